"""Read a checkpoint file safely, and say in one line what is wrong with a bad one.

Every checkpoint is read with ``torch.load(weights_only=True)``: tensors and
plain containers only, so a hostile file cannot run code. Whatever fails
(a missing, empty, truncated or random file, a pickle of other objects, a
checkpoint of another kind, non-finite weights) raises :class:`CheckpointError`
whose message names the file, what it is and what was expected. It never
suggests ``weights_only=False``: that is the one thing not to do with a file
of unknown origin.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genmodels.finite import NonFiniteError, check_weights

# what each kind of checkpoint holds, and where it comes from
KINDS: dict[str, tuple[frozenset[str], str]] = {
    "text": (frozenset({"state_dict", "config", "arch", "vocab"}),
             "a text-model checkpoint (from train_text)"),
    "image": (frozenset({"state_dict", "config", "family", "image_shape"}),
              "an image-model checkpoint (from train_image)"),
    "classifier": (frozenset({"state_dict", "config", "image_shape", "n_classes"}),
                   "a classifier checkpoint (from train_classifier)"),
    "resume": (frozenset({"format", "fingerprint", "state", "ranks"}),
               "a resume checkpoint (data/resume/, not a model)"),
}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message is one line."""


def describe(obj: Any) -> str:
    """What a loaded object is, as a noun phrase: which kind of checkpoint, or what else."""
    if isinstance(obj, Mapping):
        keys = set(obj)
        if KINDS["text"][0] <= keys:
            return f"a text-model checkpoint (arch {obj['arch']!r}, from train_text)"
        if KINDS["image"][0] <= keys:
            return f"an image-model checkpoint (family {obj['family']!r}, from train_image)"
        for required, text in KINDS.values():
            if required <= keys:
                return text
        if {"images", "labels"} <= keys or keys == {"ids"}:
            return "a prepared data split (from prepare_images or prepare_text), not a model"
        shown = ", ".join(sorted(map(str, keys))[:6]) or "none"
        return f"a dictionary of other keys ({shown})"
    return f"a {type(obj).__name__}, not a checkpoint dictionary"


def _load(path: Path) -> Any:
    import torch

    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err):
            why = ("a pickle of Python objects other than tensors and plain containers, "
                   "refused because loading it could run code")
        else:
            why = "not a PyTorch checkpoint (unreadable as one)"
        raise CheckpointError(f"{path}: {why}") from None
    except (EOFError, RuntimeError, OSError, KeyError, ValueError, IndexError,
            AttributeError, TypeError):  # truncated zip, random bytes, a text file, ...
        raise CheckpointError(f"{path}: not a PyTorch checkpoint, or a truncated or corrupt "
                              "one") from None


def read_checkpoint(path: str | Path, kind: str) -> dict:
    """The checkpoint dict of ``kind`` (a key of :data:`KINDS`) at ``path``, its weights
    checked finite; else :class:`CheckpointError`."""
    path = Path(path)
    required, expected = KINDS[kind]
    ckpt = _load(path)
    found = describe(ckpt)
    if not isinstance(ckpt, Mapping) or not required <= set(ckpt) or (
            kind == "classifier" and "family" in ckpt):
        raise CheckpointError(f"{path}: {found}; expected {expected}")
    try:
        check_weights(ckpt["state_dict"], str(path))
    except NonFiniteError as err:
        raise CheckpointError(str(err)) from None
    return dict(ckpt)


def model_mismatch(path: str | Path, err: Exception, expected: str) -> CheckpointError:
    """A readable checkpoint whose config or weights do not build its model."""
    detail = " ".join(str(err).split())
    if len(detail) > 200:
        detail = detail[:197] + "..."
    return CheckpointError(f"{path}: {expected} whose config or weights do not fit the model "
                           f"({detail})")
