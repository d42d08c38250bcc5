"""DVC stage `prepare_images`: Fashion-MNIST IDX files -> normalized, split tensors.

    python stages/prepare_images.py --raw data/raw/fashion-mnist \
        --out data/prepared/fashion-mnist --metrics reports/prepare_images/metrics.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genmodels.config import as_dict, load_section
from genmodels.data.images import PrepareImagesConfig, prepare, save_prepared
from genmodels.stage import run_stage
from genmodels.tracking import start_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="folder of the IDX files")
    parser.add_argument("--out", type=Path, required=True, help="folder for the split tensors")
    parser.add_argument("--metrics", type=Path, required=True, help="DVC metrics JSON")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    return run_stage("prepare_images", lambda: prepare_images(args))


def prepare_images(args: argparse.Namespace) -> None:
    cfg = load_section(args.params, "prepare_images", PrepareImagesConfig)
    with start_run("prepare_images", as_dict(cfg), metrics_path=args.metrics) as run:
        splits, meta = prepare(args.raw, cfg)
        save_prepared(splits, meta, args.out)
        run.log({f"size/{s}": n for s, n in meta["sizes"].items()})
        run.log({"pixels/mean": meta["mean"], "pixels/std": meta["std"]})
    print(f"prepare_images: {meta['sizes']} -> {args.out}")


if __name__ == "__main__":
    sys.exit(main())
