"""Benchmark: how fast every model trains and samples on this machine, against its peak.

    python -m genmodels.bench [--out reports/bench.json] [--table reports/bench.md]

Measures the matmul peak (float32 GFLOP/s), then for every model in
``params.yaml``: training throughput (images/s or tokens/s) on synthetic
batches of the configured size, the FLOPs of one training step (counted by
``torch.utils.flop_counter``, plus an analytic count for recurrent layers,
which it cannot see), the achieved GFLOP/s and its share of the peak,
sampling speed (images/s; single-stream generation tokens/s), and the
process's peak memory. Speed does not depend on the weights, so untrained
models are timed; text models use their corpus's vocabulary size.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from genmodels.config import ParamsError, read_params
from genmodels.device import pick_device
from genmodels.io import atomic_open, write_json

GEN_BATCH = 20  # streams in the batched generation measurement
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def timed(fn: Callable[[], object], seconds: float, device: torch.device) -> tuple[int, float]:
    """Call ``fn`` repeatedly for at least ``seconds`` after two warm-up calls: (calls, time)."""
    for _ in range(2):
        fn()
    sync(device)
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        sync(device)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return calls, elapsed


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device, n: int = 2048, seconds: float = 2.0) -> float:
    """float32 GFLOP/s of an n x n matmul: the ceiling every model is compared with."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    calls, elapsed = timed(lambda: a @ b, seconds, device)
    return 2 * n**3 * calls / elapsed / 1e9


def recurrent_flops(model: nn.Module, step: Callable[[], object]) -> int:
    """FLOPs of the recurrent layers in one training step (forward + backward ~ 3x forward).

    FlopCounterMode sees the fused ``aten::lstm`` kernel as zero FLOPs; count it
    from the shapes: per token and layer, gates x (2 x H x (input + H)) multiply-adds.
    """
    total, hooks = 0, []

    def hook(module: nn.RNNBase, args, _out):
        nonlocal total
        x = args[0]  # (B, T, input) with batch_first
        tokens = x.shape[0] * x.shape[1]
        h, inp = module.hidden_size, module.input_size
        for layer in range(module.num_layers):
            width = inp if layer == 0 else h
            total += 3 * tokens * GATES[module.mode] * 2 * h * (width + h)

    for m in model.modules():
        if isinstance(m, nn.RNNBase):
            hooks.append(m.register_forward_hook(hook))
    try:
        step()
    finally:
        for h in hooks:
            h.remove()
    return total


def step_flops(model: nn.Module, step: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() + recurrent_flops(model, step)


def bench_image(name: str, entry: dict, device: torch.device, seconds: float, peak: float) -> dict:
    from genmodels.images.registry import build_model, config_from_dict

    cfg = config_from_dict(entry, f"train_image.{name}")
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    optimizers = model.make_optimizers(cfg.lr)
    x = torch.rand(cfg.batch_size, 1, 28, 28, device=device)

    def step():
        return model.train_step(x, optimizers)

    flops = step_flops(model, step)
    calls, elapsed = timed(step, seconds, device)
    gflops = flops * calls / elapsed / 1e9
    model.eval()
    n = 1000
    s_calls, s_elapsed = timed(lambda: model.sample(n), seconds / 2, device)
    return {
        "family": cfg.family, "batch_size": cfg.batch_size,
        "train_images_per_s": cfg.batch_size * calls / elapsed,
        "gflop_per_step": flops / 1e9, "achieved_gflops": gflops, "share_of_peak": gflops / peak,
        "sample_images_per_s": n * s_calls / s_elapsed,
        "peak_rss_mib": peak_rss_mib(),
    }


def bench_text(name: str, entry: dict, prepared: Path, device: torch.device, seconds: float,
               peak: float, gen_tokens: int) -> dict:
    from genmodels.config import from_dict
    from genmodels.text.generate import tokens_per_second
    from genmodels.text.registry import build_model
    from genmodels.text.train import TrainTextConfig, make_optimizer

    cfg = from_dict(TrainTextConfig, entry, f"train_text.{name}")
    vocab_file = prepared / cfg.corpus / "vocab.json"
    if not vocab_file.is_file():
        raise FileNotFoundError(f"{vocab_file} is missing: run `dvc repro prepare_text` first")
    itos = json.loads(vocab_file.read_text())["itos"]
    torch.manual_seed(0)
    _, model = build_model(cfg.arch, cfg.model, itos, f"train_text.{name}.model")
    model = model.to(device).train()
    opt = make_optimizer(model, cfg.train)
    s = cfg.train
    x = torch.randint(len(itos), (s.batch_size, s.bptt), device=device)
    y = torch.randint(len(itos), (s.batch_size, s.bptt), device=device)

    def step():  # the training loop's step: forward, backward, clip, update
        _, loss, _ = model(x, y, None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.clip)
        opt.step()

    flops = step_flops(model, step)
    calls, elapsed = timed(step, seconds, device)
    gflops = flops * calls / elapsed / 1e9
    model.eval()
    return {
        "arch": cfg.arch, "corpus": cfg.corpus, "vocab_size": len(itos),
        "batch_size": s.batch_size, "bptt": s.bptt,
        "train_tokens_per_s": s.batch_size * s.bptt * calls / elapsed,
        "gflop_per_step": flops / 1e9, "achieved_gflops": gflops, "share_of_peak": gflops / peak,
        "generate_tokens_per_s": tokens_per_second(model.cpu(), gen_tokens, repeats=2),
        # N samples at once (evaluate_text draws 20): the projection's weights are read once
        # per step for all streams, where one stream is bound by memory bandwidth.
        f"generate_tokens_per_s_batch{GEN_BATCH}": tokens_per_second(
            model.cpu(), gen_tokens // GEN_BATCH * 4, repeats=2, batch=GEN_BATCH),
        "peak_rss_mib": peak_rss_mib(),
    }


def peak_rss_mib() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(results: dict) -> str:
    lines = [f"Matmul peak: {results['matmul_peak_gflops']:.1f} GFLOP/s "
             f"({results['device']}, {results['threads']} threads, {results['machine']})", "",
             "| model | train throughput | GFLOP/step | achieved GFLOP/s | share of peak "
             "| sampling (one stream; 20 streams) | peak RSS (MiB) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in results["image"].items():
        lines.append(f"| `{name}` | {r['train_images_per_s']:,.0f} images/s | "
                     f"{r['gflop_per_step']:.3f} | {r['achieved_gflops']:.1f} | "
                     f"{r['share_of_peak']:.0%} | {r['sample_images_per_s']:,.0f} images/s | "
                     f"{r['peak_rss_mib']:,.0f} |")
    for name, r in results["text"].items():
        lines.append(f"| `{name}` | {r['train_tokens_per_s']:,.0f} tokens/s | "
                     f"{r['gflop_per_step']:.3f} | {r['achieved_gflops']:.1f} | "
                     f"{r['share_of_peak']:.0%} | {r['generate_tokens_per_s']:,.0f}; "
                     f"{r[f'generate_tokens_per_s_batch{GEN_BATCH}']:,.0f} tokens/s | "
                     f"{r['peak_rss_mib']:,.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    p.add_argument("--out", type=Path, default=Path("reports/bench.json"))
    p.add_argument("--table", type=Path, default=Path("reports/bench.md"))
    p.add_argument("--seconds", type=float, default=3.0, help="timing per measurement")
    p.add_argument("--gen-tokens", type=int, default=1000)
    p.add_argument("--only", nargs="*", default=None, help="model names to run (default: all)")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.gen_tokens <= 0:
        p.error("--seconds and --gen-tokens must be positive")
    try:
        params = read_params(args.params)
        device = pick_device(args.device)
        peak = matmul_peak(device, seconds=args.seconds)
        print(f"matmul peak: {peak:.1f} GFLOP/s on {device}", file=sys.stderr)
        results = {"device": str(device), "threads": torch.get_num_threads(),
                   "machine": platform.processor() or platform.machine(),
                   "torch": torch.__version__, "matmul_peak_gflops": peak,
                   "image": {}, "text": {}}
        wanted = set(args.only) if args.only is not None else None
        for name, entry in params.get("train_image", {}).items():
            if wanted is None or name in wanted:
                results["image"][name] = bench_image(name, entry, device, args.seconds, peak)
                print(f"{name}: {results['image'][name]}", file=sys.stderr)
        for name, entry in params.get("train_text", {}).items():
            if wanted is None or name in wanted:
                results["text"][name] = bench_text(name, entry, args.prepared, device,
                                                   args.seconds, peak, args.gen_tokens)
                print(f"{name}: {results['text'][name]}", file=sys.stderr)
    except (ParamsError, FileNotFoundError) as err:
        print(f"bench: {err}", file=sys.stderr)
        return 1
    write_json(args.out, results)
    with atomic_open(args.table) as f:
        f.write(table(results))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
