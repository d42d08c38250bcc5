"""DVC stage `prepare_text@<corpus>`: raw text -> token ids, vocabulary and counts.

    python stages/prepare_text.py --corpus sherlock --raw data/raw/sherlock \
        --out data/prepared/sherlock --metrics reports/prepare_text/sherlock.json

Reads the params section ``prepare_text.<corpus>``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genmodels.config import as_dict, load_section
from genmodels.data.text import PrepareTextConfig, prepare_corpus, read_documents, save_corpus
from genmodels.stage import run_stage
from genmodels.tracking import start_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="name of the params.yaml entry")
    parser.add_argument("--raw", type=Path, required=True, help="folder of .txt documents")
    parser.add_argument("--out", type=Path, required=True, help="folder for ids and vocabulary")
    parser.add_argument("--metrics", type=Path, required=True, help="DVC metrics JSON")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    return run_stage(f"prepare_text@{args.corpus}", lambda: prepare_text(args))


def prepare_text(args: argparse.Namespace) -> None:
    stage = f"prepare_text@{args.corpus}"
    cfg = load_section(args.params, f"prepare_text.{args.corpus}", PrepareTextConfig)
    documents = read_documents(args.raw)
    with start_run(stage, as_dict(cfg), metrics_path=args.metrics) as run:
        ids, vocab, meta = prepare_corpus(documents, cfg, name=str(args.raw))
        save_corpus(ids, vocab, meta, args.out)
        run.log({f"tokens/{s}": n for s, n in meta["tokens"].items()})
        run.log({f"oov_rate/{s}": r for s, r in meta["oov_rate"].items()})
        run.log({"vocab_size": meta["vocab_size"], "cased_words": meta["cased_words"],
                 "boilerplate_tokens": meta["boilerplate_tokens"]})
    print(f"{stage}: tokens {meta['tokens']}, vocabulary {meta['vocab_size']}, "
          f"OOV {meta['oov_rate']}, {meta['boilerplate_tokens']} boilerplate tokens removed, "
          f"{meta['cased_words']} words with capitals -> {args.out}")


if __name__ == "__main__":
    sys.exit(main())
