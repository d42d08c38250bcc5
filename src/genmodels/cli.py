"""The ``genmodels`` command.

    genmodels generate --model lstm --corpus sherlock --prompt "sherlock woke up and saw" \\
        --words 200 --temperature 0.5 --seed 0
    genmodels generate --model lstm --corpus shakespeare --interactive   # a prompt a line, until EOF
    genmodels generate --checkpoint models:/genmodels-lstm_sherlock@champion --prompt "holmes"
    genmodels generate --model mix --corpus sherlock --prompt "holmes"  # the ensemble_text mixture
    genmodels promote lstm_sherlock     # champion -> the workspace's model if its test ppl is lower

``--model``/``--corpus`` name the checkpoint the pipeline trained
(``train_text`` entry ``<model>_<corpus>``), or the mixture of several of them that
``ensemble_text`` scored (entry ``mix_<corpus>``: its members' checkpoints, mixed with
the weights in ``reports/ensemble_text/``); ``--checkpoint`` names any other.
``--words`` is 1 to 100000 tokens, printed as they are generated. A prompt longer than
the model reads (the Transformer's ``context``, 1024 tokens for a recurrent model) is
cut to its last tokens, with a warning, and only that part is echoed. Errors (a bad checkpoint, bad sampling
settings) are one line and exit status 2; Ctrl-C ends with one line, status 130.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# where dvc.yaml's train_text stage writes the entry <model>_<corpus>
CHECKPOINT = "data/models/text/{name}.pt"
# where dvc.yaml's ensemble_text stage writes the metrics (with the weights) of mix_<corpus>
MIXTURE_WEIGHTS = "reports/ensemble_text/{name}.json"
PARAMS = "params.yaml"
# Tokens one answer may generate: a long novel (~100k words) at most. A few minutes on a
# CPU at the models' speed; a mistyped 10**9 would run for days and is refused instead.
MAX_WORDS = 100_000
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def word_count(text: str) -> int:
    """``--words``: an integer from 1 to :data:`MAX_WORDS` (argparse prints the error)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 1 <= n <= MAX_WORDS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_WORDS}, got {n}")
    return n


def checkpoint_path(args: argparse.Namespace) -> Path:
    """``--checkpoint`` (a file, or a registered model ``models:/genmodels-<entry>@champion``
    whose training checkpoint is downloaded), else the pipeline's ``<model>_<corpus>``."""
    if args.checkpoint and args.checkpoint.startswith("models:/"):
        from genmodels.model_registry import download_checkpoint

        return download_checkpoint(args.checkpoint)
    path = Path(args.checkpoint or CHECKPOINT.format(name=f"{args.model}_{args.corpus}"))
    if not path.is_file():
        raise SystemExit(f"no checkpoint at {path}: run `dvc repro train_text` first, or pass --checkpoint")
    return path


def workspace_candidate(entry: str, checkpoint: Path) -> str | None:
    """Alias ``candidate`` to the registered version of ``entry`` whose checkpoint is the
    one in the workspace (same MD5; the newest such version), so that ``promote`` judges
    the model ``dvc exp apply`` or ``dvc checkout`` put there, not merely the last one
    trained. Returns the version, or None (no such file, or no version has those bytes)."""
    from genmodels.model_registry import CANDIDATE, client, md5, model_name

    if not checkpoint.is_file():
        return None
    mlf, name, digest = client(), model_name(entry), md5(checkpoint)
    versions = [v for v in mlf.search_model_versions(f"name = '{name}'")
                if v.tags.get("checkpoint_md5") == digest]
    if not versions:
        return None
    newest = max(versions, key=lambda v: int(v.version))
    mlf.set_registered_model_alias(name, CANDIDATE, newest.version)
    return newest.version


def _promote(args: argparse.Namespace) -> int:
    from genmodels.model_registry import promote

    for kind in ("text", "image"):
        version = workspace_candidate(args.entry, Path(f"data/models/{kind}/{args.entry}.pt"))
        if version is not None:
            print(f"candidate: version {version}, the checkpoint in the workspace")
            break
    print(promote(args.entry).message)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from genmodels.device import seed_everything
    from genmodels.text.generate import complete
    from genmodels.text.mixture import ensemble_entries, load_mixture
    from genmodels.text.registry import load_checkpoint
    from genmodels.text.sampling import check_sampling

    check_sampling(args.temperature, args.top_k, args.top_p)
    entry = f"{args.model}_{args.corpus}"
    if not args.checkpoint and entry in ensemble_entries(PARAMS):  # ensemble_text's mixture
        model, itos, ckpt = load_mixture(entry, PARAMS, MIXTURE_WEIGHTS.format(name=entry), CHECKPOINT)
    else:
        model, itos, ckpt = load_checkpoint(checkpoint_path(args))
    newline = ckpt.get("newline", "line")
    gen = seed_everything(args.seed)

    def write(text: str) -> None:  # each token's text as soon as it is drawn
        sys.stdout.write(text)
        sys.stdout.flush()

    def answer(prompt: str) -> None:
        complete(model, itos, prompt, args.words, args.temperature, args.top_k, args.top_p, gen,
                 newline, write=write, casing=ckpt.get("casing"))
        print(flush=True)

    if not args.interactive:
        answer(args.prompt)
        return 0
    if sys.stdin.isatty():
        print("Type a prompt and press Enter (an empty line: unprompted); Ctrl-D ends.", file=sys.stderr)
    for line in sys.stdin:  # until end of input
        answer(line.rstrip("\n"))
        print(flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genmodels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="continue a prompt with a trained language model")
    g.add_argument("--model", default="lstm", help="model part of the train_text entry (lstm), "
                   "or mix: the ensemble_text mixture of the corpus")
    g.add_argument("--corpus", default="shakespeare", help="corpus part of the entry (sherlock)")
    g.add_argument("--checkpoint", help="a checkpoint path instead of the pipeline's, or a "
                   "registered model: models:/genmodels-<entry>@champion")
    g.add_argument("--prompt", default="", help="text to continue; empty = unprompted")
    g.add_argument("--interactive", "-i", action="store_true", help="read prompts from stdin until EOF")
    g.add_argument("--words", type=word_count, default=100,
                   help=f"tokens to generate, 1 to {MAX_WORDS}")
    g.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    g.add_argument("--top-k", type=int, default=0, help="0 = off")
    g.add_argument("--top-p", type=float, default=1.0, help="1 = off")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=_generate)
    p = sub.add_parser("promote", help="alias champion to the candidate (the version whose "
                       "checkpoint is in the workspace, else the last trained) if its test "
                       "metric is lower (models genmodels-<entry> in the MLflow registry)")
    p.add_argument("entry", help="train_text or train_image entry, e.g. lstm_shakespeare, vae")
    p.set_defaults(func=_promote)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # a bad checkpoint, bad sampling settings: one line, no traceback
        print(f"genmodels: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genmodels: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
