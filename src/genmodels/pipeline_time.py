"""How long the pipeline takes on this machine, stage by stage: the time budgets' measurement.

    python -m genmodels.pipeline_time [--out reports/pipeline_time] [-- dvc repro -f]

Runs the command (default ``dvc repro -f``: every stage, none skipped), passes its
output through as it comes, and notes the moment each ``Running stage '<name>'`` line
appears. A stage's time runs from its line to the next one (or to the command's end),
so it includes DVC's own work for it (hashing and caching its outputs). Writes
``<out>.json`` and the table ``<out>.md``: the whole wall time, the image and the text
stages' sums (the budgets of issues 12 and 11: the whole pipeline and its text
stages), every stage's seconds, the machine (CPU model, cores, bf16/AMX) and the git
commit. Nothing is written when the command fails, so a figure on file is one of a
complete run. Time it on a quiet machine: other processes slow two-threaded PyTorch
far more than their share.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

from genmodels.io import atomic_open, write_json

STAGE = re.compile(r"Running stage '([^']+)'")


def group(stage: str) -> str:
    """Which budget a stage counts toward, by dvc.yaml's naming: ``*_text`` stages are text,
    ``*_image(s)`` and ``*_classifier`` (the image metrics' classifier) are images."""
    base = stage.split("@")[0]
    if base.endswith("_text"):
        return "text"
    return "images" if base.endswith(("_image", "_images", "_classifier")) else "other"


def run_timed(command: list[str]) -> tuple[int, float, list[tuple[str, float]]]:
    """Run ``command``; its exit code, wall seconds and ``(stage, start second)`` in order."""
    echo = sys.stdout.buffer
    t0 = time.monotonic()
    starts: list[tuple[str, float]] = []
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    pending = b""
    while chunk := os.read(proc.stdout.fileno(), 65536):  # progress bars pass through at once
        echo.write(chunk)
        echo.flush()
        *lines, pending = re.split(rb"[\r\n]", pending + chunk)
        for line in lines:
            if m := STAGE.search(line.decode(errors="replace")):
                starts.append((m.group(1), time.monotonic() - t0))
    return proc.wait(), time.monotonic() - t0, starts


def durations(starts: list[tuple[str, float]], total: float) -> list[tuple[str, float]]:
    """Each stage's seconds: from its start to the next stage's start (the last: to ``total``)."""
    ends = [t for _, t in starts[1:]] + [total]
    return [(name, end - t) for (name, t), end in zip(starts, ends, strict=True)]


def machine() -> dict[str, object]:
    import torch

    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
                 platform.processor()) if Path("/proc/cpuinfo").is_file() else platform.processor()
    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
            "amx": torch.cpu._is_amx_tile_supported(),
            "cuda": torch.cuda.is_available()}


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def table(summary: dict) -> str:
    m, g = summary["machine"], summary["groups_s"]
    lines = [
        f"`{summary['command']}` on {summary['date']} (commit {summary['commit']}): "
        f"**{summary['total_s'] / 60:.1f} min** in all; images {g.get('images', 0) / 60:.1f} min, "
        f"text {g.get('text', 0) / 60:.1f} min, other {g.get('other', 0) / 60:.1f} min.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, "
        f"AVX512-BF16 {'yes' if m['avx512_bf16'] else 'no'}, AMX {'yes' if m['amx'] else 'no'}, "
        f"CUDA {'yes' if m['cuda'] else 'no'}.",
        "",
        "| stage | group | seconds |",
        "|---|---|---:|",
    ]
    lines += [f"| `{name}` | {group(name)} | {s:.1f} |" for name, s in summary["stages_s"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("reports/pipeline_time"),
                   help="writes <out>.json and <out>.md")
    p.add_argument("command", nargs="*", help="the command to time (after --); default dvc repro -f")
    args = p.parse_args(argv)
    command = args.command or ["dvc", "repro", "-f"]
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    code_commit = commit()  # before the run: it rewrites dvc.lock
    code, total, starts = run_timed(command)
    if code != 0:
        print(f"pipeline_time: {' '.join(command)} failed (exit {code}); nothing written",
              file=sys.stderr)
        return code
    stages = durations(starts, total)
    groups: dict[str, float] = {}
    for name, s in stages:
        groups[group(name)] = groups.get(group(name), 0.0) + s
    summary = {"command": " ".join(command), "date": date, "commit": code_commit,
               "machine": machine(), "total_s": total, "groups_s": groups,
               "stages_s": dict(stages)}
    write_json(args.out.with_suffix(".json"), summary)
    with atomic_open(args.out.with_suffix(".md")) as f:
        f.write(table(summary))
    print(f"pipeline_time: {total / 60:.1f} min (images {groups.get('images', 0) / 60:.1f}, "
          f"text {groups.get('text', 0) / 60:.1f}); {args.out}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
