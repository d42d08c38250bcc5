"""Fetch the data files, verify them, and write them atomically.

For each file the sources are tried in order: the mirror (a folder or a URL
prefix laid out as ``<dataset>/<file>``), the canonical URLs, then local
system folders (Debian's ``dataset-fashion-mnist``). A source counts only if
the SHA-256 of the decompressed content matches the pinned one. When every
source fails, :class:`DownloadError` names the file and each source's reason.

Everything is staged in a temporary folder beside the output and moved into
place only when every file of every dataset is verified, so a failed run
leaves no file in the output folder. A run killed outright (SIGKILL) cannot
remove its staging folder; the next run does (``io.make_staging``).
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from pydantic import Field
from tqdm import tqdm

from genmodels.config import config
from genmodels.data.sources import RemoteFile
from genmodels.io import atomic_open, make_staging

CHUNK = 1 << 20


@config
class DownloadConfig:
    mirror: str = ""  # folder or URL prefix laid out as <dataset>/<file>
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0  # per network request


class DownloadError(RuntimeError):
    """No source delivered a file with the expected checksum."""


class ChecksumError(ValueError):
    pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def candidate_sources(file: RemoteFile, mirror: str | None) -> list[tuple[str, str]]:
    """``(kind, location)`` pairs to try in order: mirror, canonical URLs, local folders."""
    sources = []
    if mirror:
        if "://" in mirror:
            sources.append(("mirror", f"{mirror.rstrip('/')}/{file.dataset}/{file.name}"))
        else:
            sources.append(("mirror", str(Path(mirror) / file.dataset / file.name)))
    sources.extend(("canonical", url) for url in file.urls)
    sources.extend(("local", str(Path(d) / file.name)) for d in file.local_dirs)
    return sources


def read_source(source: str, timeout: float, label: str) -> bytes:
    """The bytes at a URL or a local path, with a progress bar for downloads."""
    if "://" not in source:
        return Path(source).read_bytes()
    request = urllib.request.Request(source, headers={"User-Agent": "genmodels"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        chunks = []
        with tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False) as bar:
            while chunk := response.read(CHUNK):
                chunks.append(chunk)
                bar.update(len(chunk))
    return b"".join(chunks)


def verified_content(file: RemoteFile, raw: bytes) -> bytes:
    """Decompress if needed and check the SHA-256; raise :class:`ChecksumError` if wrong."""
    content = gzip.decompress(raw) if file.name.endswith(".gz") else raw
    got = sha256(content)
    if got != file.sha256:
        raise ChecksumError(f"checksum mismatch: expected sha256 {file.sha256}, got {got}")
    return content


def fetch(file: RemoteFile, dest: Path, mirror: str | None, timeout: float) -> str:
    """Write ``file`` verified to ``dest``; return the kind of source that served it."""
    failures = []
    for kind, source in candidate_sources(file, mirror):
        try:
            content = verified_content(file, read_source(source, timeout, file.name))
        except (OSError, ValueError, EOFError) as err:  # network, missing file, bad gzip/sha
            failures.append(f"{source}: {getattr(err, 'reason', None) or err}")
            continue
        with atomic_open(dest, "wb") as f:
            f.write(content)
        return kind
    raise DownloadError(
        f"could not get {file.dataset}/{file.target} (expected sha256 {file.sha256}); "
        "every source failed:\n  - " + "\n  - ".join(failures)
    )


def download_all(
    datasets: dict[str, Iterable[RemoteFile]], out: Path, mirror: str | None, timeout: float
) -> dict[str, int]:
    """Download every dataset into ``out/<dataset>/``; all or nothing. Returns files per source kind."""
    out.mkdir(parents=True, exist_ok=True)
    files = [f for group in datasets.values() for f in group]
    served = {"mirror": 0, "canonical": 0, "local": 0}
    staging = make_staging(out, ".download-")  # and stale ones of killed runs removed
    try:
        for file in tqdm(files, desc="download", unit="file"):
            served[fetch(file, staging / file.dataset / file.target, mirror, timeout)] += 1
        for dataset in datasets:
            target = out / dataset
            if target.exists():
                shutil.rmtree(target)
            (staging / dataset).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return served
