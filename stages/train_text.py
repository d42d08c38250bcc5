"""DVC stage train_text@<name>: train one language model on one prepared corpus.

Runs as ``python stages/train_text.py ...`` or, one process per device,
``torchrun --nproc_per_node=N stages/train_text.py ...`` (params.yaml: launch).
"""

from __future__ import annotations

import argparse
import logging

from genmodels import distributed
from genmodels.config import as_dict, load_section
from genmodels.resume import Resume, add_resume_arguments
from genmodels.text.train import TrainTextConfig, train


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="entry of train_text in params.yaml")
    p.add_argument("--data", required=True, help="prepared corpus folder")
    p.add_argument("--model", required=True, help="checkpoint to write")
    p.add_argument("--metrics", required=True)
    p.add_argument("--plots", required=True)
    add_resume_arguments(p)
    p.add_argument("--params", default="params.yaml")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_section(args.params, f"train_text.{args.name}", TrainTextConfig)
    newline = load_section(args.params, f"prepare_text.{cfg.corpus}", dict)["newline"]
    with distributed.session(cfg.train.device) as (info, _):
        resume = Resume(args.resume, args.checkpoint_every, info, config=as_dict(cfg),
                        data=[args.data])
        with distributed.tracking_run(info, f"train_text@{args.name}", as_dict(cfg),
                                      metrics_path=args.metrics, plots_path=args.plots,
                                      run_id=resume.run_id) as run:
            train(cfg, args.data, args.model, run=run, name=args.name, newline=newline,
                  resume=resume)


if __name__ == "__main__":
    main()
