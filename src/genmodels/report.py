"""``reports/README.md``: every model's numbers and pictures on one page.

Everything on the page is read from the files the other stages wrote
(metrics JSON, figures, samples, checkpoints for the MLflow run ids); no
number is typed in. Links are relative, so the page renders on a git host.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field

from genmodels.config import config
from genmodels.tracking import file_digest, git_commit

IMAGE_FIGURES = ("reconstructions", "latent_scatter", "latent_grid", "latent_arithmetic",
                 "interpolation", "loss_curves")


@config
class ReportConfig:
    temperature: Annotated[float, Field(ge=0)] = 0.5  # which rendered samples to quote
    # An upper bound on a quoted sample, cut at a line end past it; above render_text's
    # length, so the page shows one whole sample.
    passage_chars: Annotated[int, Field(ge=100)] = 2000


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
    # inception/dvc.lock: which checkpoint each opt-in Inception score was computed from
    inception_lock: Path | None = None
    image_models: list[str] = field(default_factory=list)
    text_models: dict[str, str] = field(default_factory=dict)  # name -> corpus
    ngram_order: int | None = None  # evaluate_text's Kneser-Ney order, for its row's label
    # image model -> (family, prior_components, prior_images): what its samples decode
    image_priors: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    ensemble_metrics: Path | None = None  # ensemble_text's metrics folder
    ensembles: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> members


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
    """The MLflow run that trained ``checkpoint`` (found by its SHA-256 tag,
    :func:`genmodels.tracking.run_of_checkpoint`); None if none, or no usable store."""
    from genmodels.tracking import TrackingError, run_of_checkpoint

    try:
        return run_of_checkpoint(checkpoint)
    except TrackingError:
        return None


def run_ids(models: Path) -> dict[str, str]:
    """``{"train_text@<entry>": run id, "train_image@<entry>": ...}`` of the checkpoints
    under ``models`` (``text/*.pt``, ``image/*.pt``) that name their run."""
    found = {f"train_{kind}@{pt.stem}": run_id(pt)
             for kind in ("text", "image") for pt in sorted((models / kind).glob("*.pt"))}
    return {k: v for k, v in found.items() if v}


def link(path: Path, out: Path) -> str:
    return os.path.relpath(path, out.parent).replace(os.sep, "/")


def class_table(metrics: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Which garments the samples are: the classifier's class shares and its confidence."""
    classes = columns(metrics.values(), ("classes/",))
    if not classes:
        return []
    test = next((m["reference/confidence"] for m in metrics.values()
                 if "reference/confidence" in m), None)
    rows = [[f"`{n}`", *(m.get(c) for c in classes), m.get("samples/confidence")]
            for n, m in metrics.items()]
    # the same classifier on the test images (every model's evaluation measures the same)
    reference = next((m for m in metrics.values() if f"reference/{classes[0]}" in m), {})
    rows.append(["test images", *(reference.get("reference/" + c) for c in classes), test])
    return ["Classes of the samples: the share of samples the evaluation classifier puts in "
            "each class, and its mean top-class probability (confidence) on them; the last "
            "row is the same classifier on the test images.", "",
            table(["model", *(c.removeprefix("classes/") for c in classes), "confidence"], rows),
            ""]


def scored_checkpoints(lock: Path | None) -> dict[str, str]:
    """Model name -> MD5 of the checkpoint its Inception score was computed from, read from
    ``inception/dvc.lock`` (DVC's MD5 of a file is that of its bytes)."""
    if lock is None or not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    scored = {}
    for stage, entry in stages.items():
        name = stage.partition("@")[2]
        for dep in entry.get("deps", []):
            if name and dep.get("path", "").endswith(f"image/{name}.pt"):
                scored[name] = dep.get("md5")
    return scored


def inception_table(folder: Path, models: list[str], checkpoints: Path,
                    lock: Path | None) -> list[str]:
    """The opt-in Inception-FID and KID (``inception/dvc.yaml``), when they were computed.

    Why the lock: the scores are not a dep of the report (DVC has no optional deps), so
    after a model is retrained its old score would sit beside its new pictures. A score
    whose checkpoint (per ``inception/dvc.lock``) is not the one in ``checkpoints`` is
    shown as out of date, without its numbers."""
    scores = {n: read_metrics(folder, n) for n in models}
    scores = {n: m for n, m in scores.items() if "inception/fid" in m}
    if not scores:
        return ["Inception-FID (the papers' scale) is opt-in: `dvc repro inception/dvc.yaml` "
                "(15 to 20 minutes per 10,000 images on 2 CPU cores), then "
                "`dvc repro -f -s report`.", ""]
    scored = scored_checkpoints(lock)  # no lock: no score can be vouched for
    current = {n: checkpoints / "image" / f"{n}.pt" for n in scores}
    stale = [n for n, path in current.items()
             if not path.is_file() or scored.get(n) != file_digest(path, "md5")]
    floor = read_metrics(folder, "floor")
    rows = [[f"`{n}`", *(["out of date"] * 2 if n in stale else
                         [m["inception/fid"], m["inception/kid"]]),
             m["inception/n_samples"], m["inception/wall_s"]] for n, m in scores.items()]
    if floor:
        rows.append(["train vs test (floor)", floor.get("floor/fid"), floor.get("floor/kid"),
                     floor.get("n_train"), floor.get("wall_s")])
    out = ["FID and KID in Inception features, the scale papers report (Heusel et al. 2017): "
           "prior samples against the 10,000 test images, grey repeated to RGB, bilinear "
           "upsampling to 299 x 299 (`dvc repro inception/dvc.yaml`). Lower is better; the "
           "floor row scores 10,000 training images the same way, what a perfect model would "
           "reach (its time includes the test images' features). For scale, published "
           "Fashion-MNIST FIDs: seven GANs, each after a large hyperparameter search, 21.5 "
           "(WGAN) to 30.7 (LSGAN) (Lucic et al. 2018, arXiv 1711.10337); with one neutral "
           "architecture, a two-stage VAE 29.3 and plain VAEs 43.6 to 84.6 (Dai & Wipf 2019, "
           "arXiv 1903.05789, Table 1, which lists the GAN figures beside them). Lucic et "
           "al.'s own VAE, about 59, is quoted from the issue that asked for this table: its "
           "table was not at hand to check.", "",
           table(["model", "Inception-FID", "Inception-KID", "samples", "wall time (s)"], rows),
           ""]
    if stale:
        out += [f"Out of date: the scores of {', '.join(f'`{n}`' for n in stale)} were computed "
                "from another checkpoint than the one in the workspace. Refresh them with "
                "`dvc repro inception/dvc.yaml`, then `dvc repro -f -s report`.", ""]
    return out


def prior_words(family: str, components: int, images: int) -> str:
    """Where a model's samples come from, in a sentence (code_prior.py)."""
    if components == 0:
        return "Samples decode draws from the model's prior, N(0, I)."
    fitted = (f"fitted to the codes of {images:,} training images"
              + (" (one posterior draw each)" if family != "ae" else ""))
    if components == 1:
        return f"Samples decode draws from one Gaussian {fitted}: the AE has no prior."
    return (f"Samples decode draws from a {components}-component Gaussian mixture {fitted} "
            "after training, not from the N(0, I) prior it trained with (ex-post density "
            "estimation, Ghosh et al. 2020).")


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
           "Test-set metrics (`reports/evaluate_image/`); sample metrics use 10,000 samples "
           "(each model's section says what they decode), in the evaluation classifier's "
           "feature space.", "",
           table(["model", *cols], rows), ""]
    out += class_table(metrics)
    # The opt-in pipeline's scores (inception/dvc.yaml), read when present. Not a declared
    # dep of the report stage: DVC has no optional deps, and declaring it would pull the
    # opt-in stages into every `dvc repro`. After `dvc repro inception/dvc.yaml`, refresh
    # the page with `dvc repro -f -s report`.
    out += inception_table(src.image_metrics.parent / "inception", src.image_models, src.models,
                           src.inception_lock)
    for name in src.image_models:
        out += [f"### `{name}`", "", f"MLflow run: `{run_id(src.models / 'image' / f'{name}.pt') or '–'}`", ""]
        if name in src.image_priors:
            out += [prior_words(*src.image_priors[name]), ""]
        folder = src.image_figures / name
        grids = [folder / "prior_samples.png", folder / "test_images.png"]
        if all(p.is_file() for p in grids):  # first what a viewer judges: samples beside data
            out += ["64 samples (fixed noise) | 64 test images", "---|---",
                    f"![{name} prior samples]({link(grids[0], src.out)}) | "
                    f"![test images]({link(grids[1], src.out)})", ""]
        for fig in IMAGE_FIGURES:
            path = folder / f"{fig}.png"
            if path.is_file():
                out.append(f"![{name} {fig.replace('_', ' ')}]({link(path, src.out)})")
        out.append("")
    return out


# --------------------------------------------------------------------------- text

PPL_COLUMNS = (("ppl", "test ppl"), ("ppl_known", "ppl on known-word targets"),
               ("acc", "top-1 acc"), ("gain_over_kn", "gain over KN"))
# evaluate_text's cache models (text/cache.py): the model's and Kneser-Ney's, each cached
CACHE_COLUMNS = ("with cache: test ppl", "with cache: gain over KN with cache")
SAMPLE_STATS = (("nl_share", "`<nl>` share"), ("punct_share", "punctuation share"),
                ("unk_share", "`<unk>` share"), ("nl_punct_ratio", "(`<nl>`+punct) / held-out"),
                ("distinct_2", "distinct-2"), ("repetition_4", "repetition-4"))
_SAMPLES_AT = re.compile(r"samples/t(\d+(?:_\d+)?)/")  # evaluate_text's "samples/t0_5/..."
_BLOCK = re.compile(r"^## (?:prompt: (.*)|unprompted)$")  # render_text's block headers

PPL_NOTE = (
    "Test ppl is the exponential of the mean cross-entropy per token of the held-out test "
    "split; the known-word column scores only targets inside the vocabulary; top-1 acc is "
    "how often the most likely next token is the right one; gain over KN is 1 − ppl / "
    "Kneser-Ney ppl (above 0: the model beats the n-gram). Perplexity is only comparable on "
    "the same vocabulary and the same treatment of unknown words: mapping more words to "
    "`<unk>` makes the test text easier to predict, and a model that never saw `<unk>` in "
    "training pays heavily for every new word. So every number here uses one vocabulary per "
    "corpus, the baselines are trained on the same word-dropout stream as the neural models, "
    "and the known-word column scores only targets inside the vocabulary. "
    "The cache columns score the same test text with a memory of what it said a moment ago, "
    "on equal terms: the neural model mixes in a continuous cache of its last hidden states "
    "(Grave et al. 2017), Kneser-Ney a unigram cache of its last words (Kuhn & De Mori 1990), "
    "each with its cache size and weight chosen on the validation split; the gain compares "
    "the two cached models. A `mix_` row is two of the models above as one: the weighted "
    "sum of their probabilities for each word (linear interpolation, weights chosen on the "
    "validation split; `ensemble_text`), with no further training; its cache column mixes "
    "the two cached models, with weights of their own, also chosen on the validation split.")
SAMPLES_NOTE = (
    "Statistics of unprompted samples at each temperature beside held-out test text of the "
    "same length: degenerate sampling shows up as a (`<nl>`+punct) ratio far from 1, high "
    "repetition-4 or low distinct-2. The models write lowercase words; the passages below "
    "give names the capitals the training text gives them (display only: the statistics "
    "count tokens).")


def sample_temperatures(metrics: Mapping[str, float]) -> list[tuple[float, str]]:
    """``(temperature, key prefix)`` of every sample-statistics group, coldest first."""
    found = {m.group(0) for k in metrics if (m := _SAMPLES_AT.match(k))}
    return sorted((float(p[len("samples/t"):-1].replace("_", ".")), p) for p in found)


def sample_blocks(text: str) -> list[tuple[str | None, str]]:
    """``(prompt or None, sample)`` for each block of a ``samples_t<T>.txt`` (render_text)."""
    blocks: list[tuple[str | None, list[str]]] = []
    for line in text.splitlines():
        header = _BLOCK.match(line)
        if header:
            prompt = header.group(1)
            blocks.append((ast.literal_eval(prompt) if prompt is not None else None, []))
        elif blocks:  # the "# model, temperature" line before the first block is skipped
            blocks[-1][1].append(line)
    return [(prompt, "\n".join(lines).strip()) for prompt, lines in blocks]


def passage(folder: Path, temperature: float, chars: int) -> tuple[str | None, str] | None:
    """The first prompted sample at ``temperature`` (else the first unprompted), whole up to
    ``chars``, past which it is cut at a line end (or a space) and marked "…"."""
    path = folder / f"samples_t{temperature:g}.txt"
    if not path.is_file():
        return None
    blocks = sample_blocks(path.read_text())
    if not blocks:
        return None
    prompt, body = next((b for b in blocks if b[0] is not None), blocks[0])
    # A sample whose token budget ran out just after an opening quote ends in a line with
    # no words ('"'): the passage ends at the line before
    lines = body.splitlines()
    while len(lines) > 1 and not any(c.isalnum() for c in lines[-1]):
        lines.pop()
    body = "\n".join(lines).rstrip()
    if len(body) > chars:
        end = body.rfind("\n", 0, chars)
        body = body[: end + 1] + "…" if end > 0 else body[:chars].rsplit(" ", 1)[0] + " …"
    return prompt, body


def ensemble_label(name: str, members: Iterable[str], m: Mapping[str, float]) -> str:
    """"`mix`: `a` × 0.65 + `b` × 0.35", the weights chosen on the validation split."""
    parts = [f"`{n}` × {m[f'test/weight/{n}']:.2f}" if f"test/weight/{n}" in m else f"`{n}`"
             for n in members]
    return f"`{name}`: " + " + ".join(parts)


def perplexity_table(names: list[str], metrics: dict, ngram_order: int | None,
                     ensembles: Mapping[str, tuple[Mapping[str, float], tuple[str, ...]]] | None = None,
                     ) -> str:
    rows = [[f"`{n}`", *(metrics[n].get(f"test/{k}") for k, _ in PPL_COLUMNS),
             metrics[n].get("cache/ppl"), metrics[n].get("cache/gain_over_kn")] for n in names]
    rows += [[ensemble_label(e, members, m), *(m.get(f"test/{k}") for k, _ in PPL_COLUMNS),
              m.get("cache/ppl"), m.get("cache/gain_over_kn")] for e, (m, members) in (ensembles or {}).items()]
    # The baselines are scored once per corpus; every model's file repeats them.
    base = next((metrics[n] for n in names if "kneser_ney/ppl" in metrics[n]), {})
    order = f"order {ngram_order}, " if ngram_order else ""
    for prefix, label in (("kneser_ney", f"Kneser-Ney ({order}same `<unk>` treatment)"),
                          ("unigram", "unigram (same `<unk>` treatment)")):
        ppl, kn = base.get(f"{prefix}/ppl"), base.get("kneser_ney/ppl")
        cached = base.get("cache/kn_ppl") if prefix == "kneser_ney" else None
        rows.append([label, ppl, base.get(f"{prefix}/ppl_known"), base.get(f"{prefix}/acc"),
                     1 - ppl / kn if ppl and kn else None, cached, 0.0 if cached else None])
    return table(["model", *(h for _, h in PPL_COLUMNS), *CACHE_COLUMNS], rows)


def samples_table(names: list[str], metrics: dict) -> str:
    rows = []
    for n in names:
        for t, prefix in sample_temperatures(metrics[n]):
            rows.append([f"`{n}`", f"T={t}", *(metrics[n].get(prefix + k) for k, _ in SAMPLE_STATS)])
    held = next((metrics[n] for n in names if any(k.startswith("heldout/") for k in metrics[n])), {})
    rows.append(["held-out text", "–", *(1.0 if k == "nl_punct_ratio" and held else
                                         held.get(f"heldout/{k}") for k, _ in SAMPLE_STATS)])
    return table(["model", "temperature", *(h for _, h in SAMPLE_STATS)], rows)


def text_section(src: Sources, cfg: ReportConfig) -> list[str]:
    metrics = {n: read_metrics(src.text_metrics, n) for n in src.text_models}
    out = ["## Text: tiny-shakespeare and Sherlock Holmes", "",
           "Held-out test text (`reports/evaluate_text/`), samples from `reports/render_text/`.", ""]
    for i, corpus in enumerate(dict.fromkeys(src.text_models.values())):
        names = [n for n, c in src.text_models.items() if c == corpus]
        unk = next((metrics[n]["test/unk_share"] for n in names if "test/unk_share" in metrics[n]),
                   None)
        first = i == 0  # the notes once, under the first corpus's tables
        mixes = {e: (read_metrics(src.ensemble_metrics, e), members)
                 for e, members in src.ensembles.items()
                 if src.ensemble_metrics and set(members) <= set(names)}
        mixes = {e: v for e, v in mixes.items() if v[0]}
        out += [f"### `{corpus}`", "", perplexity_table(names, metrics, src.ngram_order, mixes), "",
                f"`<unk>` share of the test targets: {fmt(unk)}.", "",
                *([PPL_NOTE, ""] if first else []), samples_table(names, metrics), "",
                *([SAMPLES_NOTE, ""] if first else [])]
        for name in names:
            out += [f"#### `{name}`", "",
                    f"MLflow run: `{run_id(src.models / 'text' / f'{name}.pt') or '–'}`", ""]
            for png in sorted((src.text_figures / name).glob("*.png")):
                out.append(f"![{name} {png.stem.replace('_', ' ')}]({link(png, src.out)})")
            quoted = passage(src.text_figures / name, cfg.temperature, cfg.passage_chars)
            if quoted:
                prompt, body = quoted
                kind = "Prompted" if prompt is not None else "Unprompted"
                out += ["", f"{kind} sample, temperature {cfg.temperature:g}:", ""]
                out += [f"Prompt: “{prompt}”", ""] if prompt is not None else []
                out += ["```text", body, "```"]
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


def provenance() -> str:
    """Which DVC experiment (``DVC_EXP_NAME``, set by ``dvc exp run``) and git commit made
    the page; the same name is the ``dvc.exp`` tag of the experiment's MLflow runs."""
    exp = os.environ.get("DVC_EXP_NAME")
    where = f"DVC experiment `{exp}`" if exp else "the workspace (not a DVC experiment)"
    return f"Made by {where} from git commit `{git_commit()}`."


def render(src: Sources, cfg: ReportConfig) -> str:
    lines = ["# genmodels results", "",
             "Generated by the `report` stage (`dvc repro report`) from the metrics and figures "
             "of the other stages; do not edit by hand.", "", provenance(), ""]
    lines += image_section(src) + text_section(src, cfg) + cities_section(src)
    return "\n".join(lines).rstrip() + "\n"
