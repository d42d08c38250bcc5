"""DVC stage `download`: fetch Fashion-MNIST, tiny-shakespeare and the Sherlock stories.

    python stages/download.py --out data/raw [--params params.yaml]

Writes ``<out>/<dataset>/<file>`` (decompressed, SHA-256 verified). The mirror
comes from ``download.mirror`` or, if set, the GENMODELS_MIRROR variable.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from genmodels.config import ParamsError, load_section
from genmodels.data.download import DownloadConfig, DownloadError, download_all
from genmodels.data.sources import registry
from genmodels.stage import run_stage

MIRROR_ENV = "GENMODELS_MIRROR"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="root folder for the raw data")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    return run_stage("download", lambda: download(args), expected=(DownloadError,))


def download(args: argparse.Namespace) -> None:
    cfg = load_section(args.params, "download", DownloadConfig)
    mirror = os.environ.get(MIRROR_ENV) or cfg.mirror or None
    if mirror and "://" not in mirror and not Path(mirror).is_dir():
        raise ParamsError(f"mirror folder does not exist: {mirror}")
    served = download_all(registry(), args.out, mirror, cfg.timeout_s)
    print(f"download: {sum(served.values())} files verified ({served})")


if __name__ == "__main__":
    sys.exit(main())
