"""Generation speed of the text models: tokens per second, one stream (B = 1), one step
per token (carried state / KV cache), sampling at temperature 1 over the full vocabulary.

    python benchmarks/text_generation.py --out reports/bench_text.json \\
        [--entries lstm_shakespeare transformer_shakespeare] [--tokens 2000]

Each entry's trained checkpoint (data/models/text/<entry>.pt) is used when it exists;
otherwise the entry's untrained model from params.yaml with the corpus's vocabulary size
(the speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from genmodels.config import load_section
from genmodels.io import write_json
from genmodels.text.generate import tokens_per_second
from genmodels.text.registry import build_model, load_checkpoint
from genmodels.text.train import TrainTextConfig


def load_model(entry: str, params: str, checkpoints: str, prepared: str):
    path = Path(checkpoints) / f"{entry}.pt"
    if path.is_file():
        return load_checkpoint(path)[0], str(path)
    cfg = load_section(params, f"train_text.{entry}", TrainTextConfig)
    vocab_file = Path(prepared) / cfg.corpus / "vocab.json"
    itos = json.loads(vocab_file.read_text())["itos"] if vocab_file.is_file() else ["<unk>"] * 10000
    return build_model(cfg.arch, cfg.model, itos)[1].eval(), f"untrained, V={len(itos)}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="reports/bench_text.json")
    p.add_argument("--entries", nargs="+", default=["lstm_shakespeare", "rnn_shakespeare",
                                                    "transformer_shakespeare"])
    p.add_argument("--tokens", type=int, default=2000)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--checkpoints", default="data/models/text")
    p.add_argument("--prepared", default="data/prepared")
    args = p.parse_args(argv)
    results = {"threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
               "tokens": args.tokens, "models": {}}
    for entry in args.entries:
        model, source = load_model(entry, args.params, args.checkpoints, args.prepared)
        tps = tokens_per_second(model, args.tokens)
        results["models"][entry] = {"tokens_per_s": tps, "model": source}
        print(f"{entry}: {tps:,.0f} tokens/s ({source})")
    write_json(args.out, results)


if __name__ == "__main__":
    main()
