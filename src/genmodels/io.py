"""Atomic file writes: a failed or interrupted stage leaves no half-written output.

A staging folder carries the id of the process that made it
(``.<name>-<pid>-<random>``); a process killed outright (SIGKILL, a power cut)
runs no cleanup, so the next one to stage beside it removes the folders whose
process is gone.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; it replaces ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging(path.parent, f".{path.name}-")
    os.chmod(staging, 0o777 & ~_umask())
    try:
        yield staging
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def make_staging(parent: Path, prefix: str) -> Path:
    """A new folder ``<prefix><pid>-<random>`` in ``parent``, once the stale ones of the same
    prefix are removed (:func:`remove_stale`). The caller removes it when done."""
    remove_stale(parent, prefix)
    return Path(tempfile.mkdtemp(dir=parent, prefix=f"{prefix}{os.getpid()}-"))


def remove_stale(parent: Path, prefix: str) -> list[Path]:
    """Remove the staging folders ``<prefix><pid>-<random>`` in ``parent`` whose process is
    no longer running (and those of the older ``<prefix><random>`` form); return them."""
    # mkdtemp's random part: 8 characters of [a-z0-9_]
    pattern = re.compile(re.escape(prefix) + r"(?:(\d+)-)?[a-z0-9_]{8}")
    removed = []
    for path in Path(parent).glob(f"{glob_escape(prefix)}*"):
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and not _running(match.group(1)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def glob_escape(text: str) -> str:
    return re.sub(r"([*?[])", r"[\1]", text)


def _running(pid: str | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists, another user's; or not a pid we can ask about: keep it
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def finite_json(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by None: JSON has no such numbers,
    and Python's ``NaN``/``Infinity`` extension breaks every strict reader of the file."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(v) for v in data]
    return data


def write_json(path: str | Path, data: Any) -> None:
    """Strict JSON (non-finite numbers as null), written atomically."""
    text = json.dumps(finite_json(data), indent=2, sort_keys=True, allow_nan=False)
    with atomic_open(path) as f:
        f.write(text + "\n")


def torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file (tensors and plain containers only)."""
    import torch

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
