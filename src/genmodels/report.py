"""``reports/README.md``: every model's numbers and pictures on one page.

Everything on the page is read from the files the other stages wrote
(metrics JSON, figures, samples, checkpoints for the MLflow run ids); no
number is typed in. Links are relative, so the page renders on a git host.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import Field

from genmodels.config import config

IMAGE_FIGURES = ("reconstructions", "latent_scatter", "latent_grid", "latent_arithmetic",
                 "interpolation", "loss_curves")


@config
class ReportConfig:
    temperature: Annotated[float, Field(ge=0)] = 0.5  # which rendered samples to quote
    passage_chars: Annotated[int, Field(ge=100)] = 700  # length of each quoted passage


@dataclass
class Sources:
    """Where the other stages left their results (all from dvc.yaml arguments)."""

    image_metrics: Path
    image_figures: Path
    text_metrics: Path
    text_figures: Path
    cities: Path
    models: Path
    out: Path
    image_models: list[str] = field(default_factory=list)
    text_models: dict[str, str] = field(default_factory=dict)  # name -> corpus


def flatten(tree: Mapping, prefix: str = "") -> dict[str, float]:
    """``{"test": {"ppl": 1}}`` -> ``{"test/ppl": 1}`` (the inverse of tracking.nest)."""
    flat = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            flat.update(flatten(v, f"{prefix}{k}/"))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def read_metrics(folder: Path, name: str) -> dict[str, float]:
    """``<folder>/<name>.json`` or ``<folder>/<name>/metrics.json``, flattened; {} if absent."""
    for path in (folder / f"{name}.json", folder / name / "metrics.json"):
        if path.is_file():
            return flatten(json.loads(path.read_text()))
    return {}


def fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) > 999):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(header: list[str], rows: Iterable[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def columns(metrics: Iterable[Mapping[str, float]], prefixes: tuple[str, ...]) -> list[str]:
    """Metric names starting with one of ``prefixes``, grouped in that order."""
    seen = [k for m in metrics for k in m]
    return [k for p in prefixes for k in dict.fromkeys(seen) if k.startswith(p)]


def run_id(checkpoint: Path) -> str | None:
    """The MLflow run id a training stage stored in its checkpoint, if any."""
    if not checkpoint.is_file():
        return None
    import torch

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    return ckpt.get("run_id")


def link(path: Path, out: Path) -> str:
    return os.path.relpath(path, out.parent).replace(os.sep, "/")


def image_section(src: Sources) -> list[str]:
    metrics = {n: read_metrics(src.image_metrics, n) for n in src.image_models}
    cols = columns(metrics.values(), ("test/", "samples/", "novelty/"))
    rows = [[f"`{n}`", *(m.get(c) for c in cols)] for n, m in metrics.items()]
    # The floor: training images scored like samples, the best any model can do.
    floor = next((m for m in metrics.values() if any(k.startswith("floor/") for k in m)), {})
    if floor:
        rows.append(["train vs test (floor)",
                     *(floor.get("floor/" + c.removeprefix("samples/")) if c.startswith("samples/")
                       else None for c in cols)])
    out = ["## Images: Fashion-MNIST", "",
           "Test-set metrics (`reports/evaluate_image/`); sample metrics use 10,000 draws from "
           "the prior, in the evaluation classifier's feature space.", "",
           table(["model", *cols], rows), ""]
    for name in src.image_models:
        out += [f"### `{name}`", "", f"MLflow run: `{run_id(src.models / 'image' / f'{name}.pt') or '–'}`", ""]
        folder = src.image_figures / name
        for fig in IMAGE_FIGURES:
            path = folder / f"{fig}.png"
            if path.is_file():
                out.append(f"![{name} {fig.replace('_', ' ')}]({link(path, src.out)})")
        out.append("")
    return out


def passage(folder: Path, temperature: float, chars: int) -> str | None:
    path = folder / f"samples_t{temperature:g}.txt"
    if not path.is_file():
        return None
    text = path.read_text()
    start = text.find("## unprompted")
    body = text[start:] if start >= 0 else text
    body = body.split("\n", 2)[-1].strip()
    return body[:chars].rsplit(" ", 1)[0] + " …" if len(body) > chars else body


def text_section(src: Sources, cfg: ReportConfig) -> list[str]:
    metrics = {n: read_metrics(src.text_metrics, n) for n in src.text_models}
    cols = columns(metrics.values(), ("test/", "samples/"))
    rows = []
    for corpus in dict.fromkeys(src.text_models.values()):
        names = [n for n, c in src.text_models.items() if c == corpus]
        rows += [[f"`{n}`", corpus, *(metrics[n].get(c) for c in cols)] for n in names]
        first = next((metrics[n] for n in names if metrics[n]), {})
        for prefix, label in (("unigram/", "unigram"), ("kneser_ney/", "Kneser-Ney n-gram")):
            if any(k.startswith(prefix) for k in first):
                rows.append([label, corpus, *(first.get(prefix + c.removeprefix("test/"))
                                              if c.startswith("test/") else None for c in cols)])
    out = ["## Text: tiny-shakespeare and Sherlock Holmes", "",
           "Held-out test text (`reports/evaluate_text/`); the n-gram baselines use the same "
           "vocabulary and test tokens.", "", table(["model", "corpus", *cols], rows), ""]
    for name, corpus in src.text_models.items():
        out += [f"### `{name}` ({corpus})", "",
                f"MLflow run: `{run_id(src.models / 'text' / f'{name}.pt') or '–'}`", ""]
        for png in sorted((src.text_figures / name).glob("*.png")):
            out.append(f"![{name} {png.stem.replace('_', ' ')}]({link(png, src.out)})")
        text = passage(src.text_figures / name, cfg.temperature, cfg.passage_chars)
        if text:
            out += ["", f"Unprompted sample, temperature {cfg.temperature:g}:", "", "```text", text, "```"]
        out.append("")
    return out


def cities_section(src: Sources) -> list[str]:
    metrics = read_metrics(src.cities.parent, src.cities.name)
    if not metrics:
        return []
    out = ["## Where next for PyData?", "",
           table(["held-out editions", "mixture log-lik", "one Gaussian log-lik"],
                 [[metrics.get("heldout/events"), metrics.get("heldout/loglik_mixture"),
                   metrics.get("heldout/loglik_gaussian")]]), ""]
    proposals = src.cities / "proposals.csv"
    if proposals.is_file():
        import pandas as pd

        top = pd.read_csv(proposals)
        out += ["Proposed cities: " + ", ".join(f"{r.city} ({r.country})" for r in top.itertuples()), ""]
    if (src.cities / "map.png").is_file():
        out += [f"![PyData cities map]({link(src.cities / 'map.png', src.out)})", ""]
    return out


def render(src: Sources, cfg: ReportConfig) -> str:
    lines = ["# genmodels results", "",
             "Generated by the `report` stage (`dvc repro report`) from the metrics and figures "
             "of the other stages; do not edit by hand.", ""]
    lines += image_section(src) + text_section(src, cfg) + cities_section(src)
    return "\n".join(lines).rstrip() + "\n"
