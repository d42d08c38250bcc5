"""Resume a killed training stage where it stopped, with the results of an unbroken run.

Every ``checkpoint_every`` optimizer steps a training stage writes a resume
checkpoint, atomically: weights, optimizer and scheduler states, the step and
the position inside the epoch, the data generator's state at the epoch's start,
the best epoch so far, the tracking run (its id and metric history), and each
rank's RNG states, carried hidden state and running sums. Started again (by
``dvc repro``), the stage continues from there and ends with the same weights
and metrics as a run that was never stopped, bit for bit on the CPU; its MLflow
run continues too.

DVC deletes a stage's outputs before it runs the stage, so the checkpoint lives
at a path that ``dvc.yaml`` passes to the stage but does not declare as an
output (``data/resume/``, git-ignored). It carries a fingerprint of what it was
made from (settings, data, code, number of ranks) and is ignored when any of
them changed; the stage deletes it once its outputs are written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from genmodels.distributed import SINGLE, Dist, broadcast_object, gather_objects
from genmodels.io import torch_save

log = logging.getLogger(__name__)

FORMAT = 2  # bump when the checkpoint's layout changes: older ones are then ignored


class Resume:
    """One stage's resume checkpoint. ``Resume()`` (no path) is off: nothing is read or written.

    After construction ``state`` is the shared part of a checkpoint to continue from
    (the same on every rank) and ``local`` this rank's part, or both are None.
    """

    def __init__(self, path: str | Path | None = None, every: int = 0, info: Dist = SINGLE, *,
                 config: Mapping[str, Any] | None = None, data: Iterable[str | Path] = ()):
        self.path = Path(path) if path is not None and every > 0 else None
        self.every, self.info = every, info
        self.state: dict | None = None
        self.local: dict | None = None
        if self.path is None:
            return
        self._fingerprint = fingerprint(config or {}, data, info.world_size) if info.is_main else ""
        saved = broadcast_object(self._read() if info.is_main else None, info)
        if saved is not None:
            self.state, self.local = saved["state"], saved["ranks"][info.rank]

    @property
    def run_id(self) -> str | None:
        """The tracking run to continue, if resuming."""
        return (self.state or {}).get("run", {}).get("run_id")

    def due(self, step: int) -> bool:
        return self.path is not None and step % self.every == 0

    def save(self, state: Mapping[str, Any], local: Mapping[str, Any]) -> None:
        """Write a checkpoint (every rank calls this: each rank's ``local`` part is gathered)."""
        ranks = gather_objects(_to_cpu(dict(local)), self.info)
        if self.info.is_main:
            torch_save({"format": FORMAT, "fingerprint": self._fingerprint, "state": dict(state),
                        "ranks": ranks}, self.path)

    def finish(self) -> None:
        """The stage's outputs are written: the checkpoint is no longer needed."""
        if self.path is not None and self.info.is_main:
            self.path.unlink(missing_ok=True)

    def _read(self) -> dict | None:
        if not self.path.is_file():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - an unreadable checkpoint means starting afresh
            log.warning("cannot read resume checkpoint %s (%s): starting afresh", self.path, err)
            return None
        if saved.get("format") != FORMAT or saved.get("fingerprint") != self._fingerprint:
            log.warning("resume checkpoint %s was made from other settings, data, code or number "
                        "of ranks: starting afresh", self.path)
            return None
        log.warning("resuming from %s at step %d", self.path, saved["state"]["step"])
        return saved


def add_resume_arguments(parser: argparse.ArgumentParser) -> None:
    """The training stages' flags for :class:`Resume` (dvc.yaml passes both)."""
    parser.add_argument("--resume", help="resume checkpoint (not a DVC output: it outlives a kill)")
    parser.add_argument("--checkpoint-every", type=int, default=0,
                        help="optimizer steps between resume checkpoints; 0: none")


def fingerprint(config: Mapping[str, Any], data: Iterable[str | Path], world_size: int) -> str:
    """sha256 of the settings, the data files' bytes, the package's code and the rank count."""
    h = hashlib.sha256(json.dumps({"config": config, "world_size": world_size},
                                  sort_keys=True, default=str).encode())
    code = Path(__file__).parent
    for root in [*map(Path, data), code]:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if root == code and path.suffix != ".py":
                continue
            h.update(path.name.encode())
            with open(path, "rb") as f:
                h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()


def rng_state() -> dict:
    """This process's torch RNG states (CPU, and CUDA when present)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def to_device(obj: Any, device: torch.device) -> Any:
    """Tensors inside nested tuples, lists and dicts, moved to ``device`` (carried state)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(x, device) for x in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def _to_cpu(obj: Any) -> Any:
    return to_device(obj, torch.device("cpu"))
