"""Benchmark: how fast every model trains and samples on this machine, against its peak.

    python -m genmodels.bench [--out reports/bench.json] [--table reports/bench.md]
                              [--only NAME ...] [--profile 10] [--threads 1 --clock thread]

Measures the matmul peak, then for every model in ``params.yaml``: training
throughput (images/s or tokens/s), the FLOPs of one training step, the achieved
GFLOP/s and its share of the peak, sampling speed (images/s; generation tokens/s,
one stream and 20 at once) and the peak resident memory while the model ran.

The peak is the fastest float32 n x n product PyTorch can run here, over sizes
and over its two GEMM libraries: ``torch.mm`` (MKL on x86) and oneDNN. They
differ: on AMD processors MKL runs AVX2 kernels where oneDNN runs AVX-512, about
half the speed (see ``genmodels.speed``), so ``torch.mm`` alone is no ceiling.

Training steps are the training loops' steps on the configured batch: the image
models' ``train_step`` on a (B, 1, 28, 28) batch of uniform noise (a convolution's
speed does not depend on the pixels); the language models' forward, backward,
clip and AdamW step on ``WINDOWS`` consecutive BPTT windows of the prepared
training split, the state carried, as in ``text.train`` (an adaptive softmax's
cost depends on how many targets fall in its rare-word clusters, so real text
is needed). FLOPs are counted by ``torch.utils.flop_counter`` on the plain
PyTorch ops, plus an analytic count for fused recurrent kernels it cannot see
(oneDNN's LSTM) and a formula for the CPU flash attention it does not know.
Times are the best chunk of a few (the least disturbed on a shared machine); on
a busy machine ``--threads 1 --clock thread`` times in the thread's CPU time,
which other processes barely disturb (with two threads, one descheduled thread
stalls the other at every parallel op, and wall times there mean little).
Speed does not depend on the weights, so untrained models are timed.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import itertools
import math
import platform
import re
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from genmodels import speed
from genmodels.config import ParamsError, read_params
from genmodels.device import pick_device
from genmodels.io import atomic_open, write_json

GEN_BATCH = 20  # streams in the batched generation measurement
WINDOWS = 16  # BPTT windows a text training step cycles through (18k tokens at 32 x 35)
PEAK_SIZES = (512, 1024, 2048)
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# wall: what a run takes. thread: this thread's CPU time, which a shared machine's other
# processes do not inflate (valid with one thread, where every op runs on this thread).
CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}
_clock = CLOCKS["wall"]


def seconds_per_call(fn: Callable[[], object], seconds: float, device: torch.device,
                     multiple: int = 1) -> float:
    """Seconds per call of ``fn``: the fastest of chunks of calls filling ``seconds``.

    A chunk is a multiple of ``multiple`` calls lasting about 0.25 s (less when
    ``seconds`` is short); the
    fastest chunk is the one least disturbed by other processes on a shared machine
    (on a quiet one, all agree).
    """
    for _ in range(2):
        fn()
    sync(device)
    t0 = _clock()
    for _ in range(multiple):
        fn()
    sync(device)
    once = max((_clock() - t0) / multiple, 1e-9)
    chunk = min(0.25, seconds / 3)
    calls = multiple * max(1, math.ceil(chunk / (once * multiple)))
    best, spent = math.inf, 0.0
    while spent < seconds or best == math.inf:
        t0 = _clock()
        for _ in range(calls):
            fn()
        sync(device)
        elapsed = _clock() - t0
        best, spent = min(best, elapsed / calls), spent + elapsed
    return best


def matmul_rates(device: torch.device, sizes=PEAK_SIZES, seconds: float = 1.0) -> dict:
    """float32 GFLOP/s of n x n products per library and size: {"torch.mm": {"2048": ...}, ...}."""
    libs: dict[str, Callable] = {"torch.mm": torch.mm}
    if device.type == "cpu" and speed.onednn_available():
        libs["onednn"] = lambda a, b: speed._mm(a, b.t())  # same product, oneDNN kernel
    rates: dict[str, dict[str, float]] = {lib: {} for lib in libs}
    for n in sizes:
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        for lib, mm in libs.items():  # interleaved per size: both see the same machine load
            s = seconds_per_call(lambda mm=mm, a=a, b=b: mm(a, b), seconds / len(sizes), device)
            rates[lib][str(n)] = 2 * n**3 / s / 1e9
    return rates


def _register_cpu_flash_attention() -> None:
    """FlopCounterMode has formulas for the CUDA attention kernels, not for the CPU flash
    kernel that scaled_dot_product_attention runs without dropout: add them."""
    from torch.utils import flop_counter as fc

    ops = torch.ops.aten
    fwd = getattr(ops, "_scaled_dot_product_flash_attention_for_cpu", None)
    bwd = getattr(ops, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if fwd is None or bwd is None or fwd in fc.flop_registry:
        return

    @fc.register_flop_formula(fwd, get_raw=True)
    def _fwd(query, key, value, *args, out_val=None, **kwargs) -> int:
        return fc.sdpa_flop_count(query.shape, key.shape, value.shape)

    @fc.register_flop_formula(bwd, get_raw=True)
    def _bwd(grad_out, query, key, value, *args, out_val=None, **kwargs) -> int:
        # the model's 4 products (2 x forward), as on the math path; the kernel's
        # recomputed scores are not work the model asks for
        return 2 * fc.sdpa_flop_count(query.shape, key.shape, value.shape)


def recurrent_flops(module: nn.RNNBase, x: torch.Tensor) -> int:
    """Forward + backward FLOPs (~3x forward) of a recurrent module on input x ((B, T, in),
    (T, B, in) or (T, in)): per token, layer and direction, gates x 2 x H x (input + H)."""
    tokens = x.shape[:-1].numel()
    h, total = module.hidden_size, 0
    for layer in range(module.num_layers):
        width = module.input_size if layer == 0 else h * (2 if module.bidirectional else 1)
        total += tokens * GATES[module.mode] * 2 * h * (width + h)
    return 3 * total * (2 if module.bidirectional else 1)


def count_flops(model: nn.Module, step: Callable[[], object], calls: int = 1) -> float:
    """Mean FLOPs of one ``step`` over ``calls`` calls, counted on the plain PyTorch ops.

    Recurrent layers whose forward the counter saw no FLOPs for (a fused kernel:
    oneDNN's LSTM on the CPU, cuDNN's on CUDA) get the analytic count; the others
    (tanh RNN, GRU on the CPU) run as matmuls that it counts already.
    """
    _register_cpu_flash_attention()
    counter = FlopCounterMode(display=False)
    extra, seen, hooks = 0, {}, []

    def total() -> int:
        return sum(counter.get_flop_counts().get("Global", {}).values())

    def before(module, args):
        seen[module] = total()

    def after(module, args, _out):
        nonlocal extra
        if total() == seen.pop(module):
            extra += recurrent_flops(module, args[0])

    for m in model.modules():
        if isinstance(m, nn.RNNBase):
            hooks += [m.register_forward_pre_hook(before), m.register_forward_hook(after)]
    try:
        with speed.onednn(False), counter:
            for _ in range(calls):
                step()
    finally:
        for h in hooks:
            h.remove()
    return (counter.get_total_flops() + extra) / calls


class PeakMemory:
    """Peak resident memory (MiB) from ``reset()`` on: Linux's VmHWM, which writing 5 to
    /proc/self/clear_refs resets; elsewhere the process's peak so far (getrusage).
    The reset first hands freed memory back to the system (glibc's malloc_trim), so a
    model's figure does not carry what the models before it left in the allocator."""

    def reset(self) -> None:
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass

    def mib(self) -> float:
        try:
            status = Path("/proc/self/status").read_text()
            return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
        except (OSError, AttributeError):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def top_ops(step: Callable[[], object], calls: int, top: int) -> list[dict]:
    """The ``top`` aten ops by self time over ``calls`` steps: name, ms per step, share."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            step()
    events = [e for e in prof.key_averages()  # kernels (aten::, mkldnn::), not Python frames
              if "::" in e.key and not e.key.startswith(("autograd::", "Optimizer"))]
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) or 1.0
    events.sort(key=lambda e: -e.self_cpu_time_total)
    return [{"op": e.key, "ms_per_step": e.self_cpu_time_total / 1e3 / calls,
             "share": e.self_cpu_time_total / total} for e in events[:top]]


def text_inputs(entry: dict, prepared: Path) -> list[Path]:
    """The prepared files a text model's measurement reads."""
    folder = prepared / str(entry.get("corpus", "")) if isinstance(entry, dict) else prepared
    return [folder / "vocab.json", folder / "train.pt"]


def image_case(name: str, entry: dict, device: torch.device):
    """(config, model, one training step, images per step) for ``train_image.<name>``: the
    training loop's own step (``ImageTrainee.step``) on a batch of uniform noise."""
    from genmodels.images.registry import config_from_dict
    from genmodels.images.train import ImageTrainee

    cfg = config_from_dict(entry, f"train_image.{name}")
    torch.manual_seed(0)
    x = torch.rand(cfg.batch_size, 1, 28, 28)
    trainee = ImageTrainee(cfg, x, x, torch.Generator().manual_seed(0), device)
    trainee.epoch(None, None)  # train mode, sums from zero
    idx = torch.arange(cfg.batch_size)
    return cfg, trainee.model, lambda: trainee.step(idx, 0), cfg.batch_size


def classifier_case(entry: dict, device: torch.device):
    """(config, model, one training step, images per step) for ``train_classifier``: the
    training loop's own step (``ClassifierTrainee.step``) on a batch of noise with random
    labels."""
    from genmodels.config import from_dict
    from genmodels.images.classifier import ClassifierConfig
    from genmodels.images.train_classifier import ClassifierTrainee

    cfg = from_dict(ClassifierConfig, entry, "train_classifier")
    torch.manual_seed(0)
    x = torch.rand(cfg.batch_size, 1, 28, 28)
    y = torch.arange(cfg.batch_size) % 10  # every class present
    trainee = ClassifierTrainee(cfg, {k: (x, y) for k in ("train", "val", "test")}, device)
    trainee.epoch(None, None)
    idx = torch.arange(cfg.batch_size)
    return cfg, trainee.model, lambda: trainee.step(idx, 0), cfg.batch_size


def text_case(name: str, entry: dict, prepared: Path, device: torch.device):
    """(config, vocabulary, model, one training step cycling through WINDOWS real windows,
    tokens per step) for ``train_text.<name>``: the training loop's own step
    (``TextTrainee.step``: forward with the state carried, backward, clip, AdamW)."""
    from genmodels.config import from_dict
    from genmodels.text.data import load_split, load_vocab
    from genmodels.text.train import TextTrainee, TrainTextConfig

    cfg = from_dict(TrainTextConfig, entry, f"train_text.{name}")
    vocab = load_vocab(prepared / cfg.corpus)
    s = cfg.train
    ids = load_split(prepared / cfg.corpus, "train")
    torch.manual_seed(0)
    trainee = TextTrainee(cfg, vocab, ids, ids[: s.eval_batch_size * 2], device, entry=name)
    batches = list(itertools.islice(trainee.epoch(torch.Generator().manual_seed(0), None),
                                    WINDOWS))
    count = itertools.count()

    def step():
        i = next(count)
        trainee.step(batches[i % len(batches)], i)

    return cfg, list(vocab.itos), trainee.model, step, len(batches), s.batch_size * s.bptt


def bench_image(name: str, entry: dict, device: torch.device, seconds: float, peak: float,
                memory: PeakMemory, profile: int = 0) -> dict:
    """An image model, or the classifier (``name`` "classifier"): its sampling speed is
    then the speed of its features, which the sample metrics compute for every image."""
    memory.reset()
    if name == "classifier":
        cfg, model, step, images = classifier_case(entry, device)
    else:
        cfg, model, step, images = image_case(name, entry, device)
    flops = count_flops(model, step)
    per_step = seconds_per_call(step, seconds, device)
    model.eval()
    n = 1000
    if name == "classifier":
        x = torch.rand(n, 1, 28, 28, device=device)
        with torch.no_grad():
            per_sample = seconds_per_call(lambda: model.features(x), seconds / 2, device)
    else:
        per_sample = seconds_per_call(lambda: model.sample(n), seconds / 2, device)
    result = {
        "family": getattr(cfg, "family", "classifier"), "batch_size": cfg.batch_size,
        "train_images_per_s": images / per_step, "train_step_ms": per_step * 1e3,
        "gflop_per_step": flops / 1e9, "achieved_gflops": flops / per_step / 1e9,
        "share_of_peak": flops / per_step / 1e9 / peak,
        "features_images_per_s" if name == "classifier" else "sample_images_per_s": n / per_sample,
        "peak_rss_mib": memory.mib(),
    }
    if profile:
        model.train()
        result["top_ops"] = top_ops(step, 5, profile)
    return result


def bench_text(name: str, entry: dict, prepared: Path, device: torch.device, seconds: float,
               peak: float, gen_tokens: int, memory: PeakMemory, profile: int = 0) -> dict:
    from genmodels.text.generate import tokens_per_second

    memory.reset()
    cfg, itos, model, step, cycle, tokens = text_case(name, entry, prepared, device)
    flops = count_flops(model, step, cycle)  # mean over the windows: tail clusters vary
    per_step = seconds_per_call(step, seconds, device, multiple=cycle)
    result = {
        "arch": cfg.arch, "corpus": cfg.corpus, "vocab_size": len(itos),
        "batch_size": cfg.train.batch_size, "bptt": cfg.train.bptt,
        "train_tokens_per_s": tokens / per_step, "train_step_ms": per_step * 1e3,
        "gflop_per_step": flops / 1e9, "achieved_gflops": flops / per_step / 1e9,
        "share_of_peak": flops / per_step / 1e9 / peak,
    }
    if profile:
        result["top_ops"] = top_ops(step, cycle, profile)
    model.eval()
    result["generate_tokens_per_s"] = tokens_per_second(model.cpu(), gen_tokens, repeats=2)
    # N samples at once (evaluate_text draws 20): the projection's weights are read once
    # per step for all streams, where one stream is bound by memory bandwidth.
    result[f"generate_tokens_per_s_batch{GEN_BATCH}"] = tokens_per_second(
        model.cpu(), gen_tokens // GEN_BATCH * 4, repeats=2, batch=GEN_BATCH)
    result["peak_rss_mib"] = memory.mib()
    return result


def table(results: dict) -> str:
    rates = results["matmul_gflops"]
    sizes = ", ".join(f"{lib} {max(r.values()):.0f}" for lib, r in rates.items())
    lines = [f"Matmul peak: {results['matmul_peak_gflops']:.1f} GFLOP/s float32, the best of "
             f"n = {', '.join(next(iter(rates.values())))} ({sizes}); "
             f"{results['device']}, {results['threads']} threads, {results['machine']}"
             + (", times in thread CPU time" if results.get("clock") == "thread" else ""), "",
             "| model | train throughput | GFLOP/step | achieved GFLOP/s | share of peak "
             "| sampling (one stream; 20 streams) | peak RSS (MiB) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in results["image"].items():
        sampling = (f"{r['sample_images_per_s']:,.0f} images/s" if "sample_images_per_s" in r
                    else f"features: {r['features_images_per_s']:,.0f} images/s")
        lines.append(f"| `{name}` | {r['train_images_per_s']:,.0f} images/s | "
                     f"{r['gflop_per_step']:.3f} | {r['achieved_gflops']:.1f} | "
                     f"{r['share_of_peak']:.0%} | {sampling} | {r['peak_rss_mib']:,.0f} |")
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
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="record each model's N most expensive ops per training step")
    p.add_argument("--peak-sizes", type=int, nargs="+", default=list(PEAK_SIZES), metavar="N",
                   help="n of the n x n products the peak is the best of")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="thread: CPU time of the one thread (with --threads 1), for a shared "
                        "machine; generation speeds stay wall time")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    if args.threads < 0:
        p.error("--threads must be >= 0")
    if args.clock == "thread" and (args.threads or torch.get_num_threads()) != 1:
        p.error("--clock thread measures one thread: add --threads 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    global _clock
    _clock = CLOCKS[args.clock]
    if args.seconds <= 0 or args.gen_tokens <= 0 or args.profile < 0 or min(args.peak_sizes) <= 0:
        p.error("--seconds, --gen-tokens and --peak-sizes must be positive, --profile >= 0")
    try:
        params = read_params(args.params)
        wanted = set(args.only) if args.only is not None else None
        for name, entry in params.get("train_text", {}).items():  # before any work
            for path in text_inputs(entry, args.prepared) if wanted is None or name in wanted else []:
                if not path.is_file():
                    raise FileNotFoundError(f"{path} is missing: run `dvc repro prepare_text` first")
        device = pick_device(args.device)
        rates = matmul_rates(device, args.peak_sizes, args.seconds)
        peak = max(r for lib in rates.values() for r in lib.values())
        print(f"matmul peak: {peak:.1f} GFLOP/s on {device} {rates}", file=sys.stderr)
        results = {"device": str(device), "threads": torch.get_num_threads(), "clock": args.clock,
                   "machine": platform.processor() or platform.machine(),
                   "torch": torch.__version__, "onednn_linear": speed.onednn_available(),
                   "matmul_gflops": rates, "matmul_peak_gflops": peak,
                   "image": {}, "text": {}}
        memory = PeakMemory()
        images = dict(params.get("train_image", {}))
        if "train_classifier" in params:
            images["classifier"] = params["train_classifier"]
        for name, entry in images.items():
            if wanted is None or name in wanted:
                results["image"][name] = bench_image(name, entry, device, args.seconds, peak,
                                                     memory, args.profile)
                print(f"{name}: {results['image'][name]}", file=sys.stderr)
        for name, entry in params.get("train_text", {}).items():
            if wanted is None or name in wanted:
                results["text"][name] = bench_text(name, entry, args.prepared, device,
                                                   args.seconds, peak, args.gen_tokens,
                                                   memory, args.profile)
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
