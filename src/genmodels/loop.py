"""The one training loop: epochs of optimizer steps, resumable, tracked, guarded.

Every trained model (image variants, the classifier, the language models) runs
through :func:`fit`. A model family supplies a :class:`Trainee`: how to draw
an epoch's batches, one optimizer step, and the evaluation after an epoch. The
loop owns everything the families share:

- the tracking run (MLflow + DVC metrics and plots files; a :class:`NullRun` on
  ranks other than 0), its per-epoch metrics and its console line;
- the data order: each epoch's batches are drawn from one seeded generator,
  whose state at the epoch's start is kept, so a resumed epoch redraws them;
- resume checkpoints every ``checkpoint_every`` steps (``resume.py``): the
  trainee's state, the position in the epoch, the best epoch so far, the run's
  history and each rank's RNG state and running sums; a resumed run ends with
  the bytes an unbroken one writes;
- the finite guard: a NaN or infinite loss or gradient norm stops the run;
- best-epoch bookkeeping and early stopping, when ``select`` names a metric;
- the end: the checkpoint, its tag on the run (``tracking.tag_checkpoint``),
  the MLflow model and its registry version.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from genmodels.distributed import SINGLE, Dist
from genmodels.finite import FiniteGuard
from genmodels.resume import Resume, rng_state, set_rng_state
from genmodels.tracking import entry_name, tag_checkpoint, training_run

Number = float | torch.Tensor


class Trainee(Protocol):
    """What one model family gives :func:`fit`."""

    steps_per_epoch: int  # optimizer steps in one epoch (after ``limit_batches``)
    headline: tuple[str, ...]  # the metrics of the per-epoch console line
    tags: Mapping[str, str]  # extra tags of the tracking run

    def state_dict(self) -> dict:
        """Weights, optimizer and schedule states: what every rank shares."""

    def load_state_dict(self, state: Mapping) -> None: ...

    def epoch(self, gen: torch.Generator, progress: Mapping | None) -> Iterator[Any]:
        """This epoch's batches, drawn from ``gen``; the running sums start from ``progress``
        (this rank's, from a resume checkpoint) or from zero."""

    def step(self, batch: Any, step: int) -> tuple[Number, Number | None]:
        """One optimizer step (``step`` of them done before); returns (loss, gradient norm)."""

    def progress(self) -> dict:
        """This rank's running sums (and carried state) of the epoch: resume's local part."""

    def end_epoch(self, epoch: int, seconds: float, run) -> dict[str, float]:
        """The epoch's metrics (training sums over the ranks, then validation); ``seconds``
        of training. May log artifacts to ``run``."""

    def weights(self) -> dict[str, torch.Tensor]:
        """A copy of the model's weights on the CPU (the best epoch's, when kept)."""

    def finish(self, best: Mapping | None) -> dict[str, float]:
        """After the last epoch: load the best epoch's weights if ``best``; the final metrics."""

    def save(self, checkpoint: Path) -> None:
        """Write the checkpoint (rank 0)."""

    def export(self, checkpoint: Path) -> tuple[str | None, torch.nn.Module, Any] | None:
        """(registry kind, module, input example) of the MLflow model, or None for none; a
        kind of None: logged with the run, not registered."""


def _value(x: Number) -> float:
    return x.detach().item() if isinstance(x, torch.Tensor) else float(x)


def fit(trainee: Trainee, *, stage: str, epochs: int, gen: torch.Generator,
        params: Mapping[str, Any], checkpoint: str | Path, metrics: str | Path | None = None,
        plots: str | Path | None = None, inputs: list[str | Path] = (),
        resume: Resume | None = None, info: Dist = SINGLE, select: str | None = None,
        patience: int | None = None) -> dict[str, float]:
    """Train ``trainee`` for ``epochs`` epochs inside the tracking run of ``stage``; write
    ``checkpoint`` and register its model. With ``select`` (a metric, lower is better) the
    best epoch's weights are kept, and ``patience`` epochs without a better one stop the
    run. Returns the run's latest metrics."""
    from genmodels.export import log_model
    from genmodels.model_registry import register

    resume = resume or Resume()
    at = resume.state or {"epoch": 1, "step": 0, "best": None}  # where a killed run stopped
    if resume.state:
        trainee.load_state_dict(at["trainee"])
        set_rng_state(resume.local["rng"])
    step, best = at["step"], at["best"]  # best: epoch, metrics and weights of the best epoch
    with training_run(info, stage, params, metrics_path=metrics, plots_path=plots,
                      run_id=resume.run_id, inputs=inputs) as run:
        if resume.state:
            run.load_state_dict(at["run"])
        run.set_tags(dict(trainee.tags))
        for epoch in range(at["epoch"], epochs + 1):
            resumed = resume.state is not None and epoch == at["epoch"]
            epoch_gen = at["epoch_gen"] if resumed else gen.get_state()  # this epoch's draws
            gen.set_state(epoch_gen)
            done = at["batch"] if resumed else 0  # batches of this epoch already trained
            order = trainee.epoch(gen, resume.local["progress"] if resumed else None)
            desc = f"{stage} epoch {epoch}/{epochs}"
            guard = FiniteGuard(f"{stage} epoch {epoch}")
            bar = tqdm(itertools.islice(order, done, trainee.steps_per_epoch),
                       total=trainee.steps_per_epoch, initial=done, desc=desc, leave=False,
                       disable=not info.is_main)
            t0 = time.perf_counter()
            for batch in bar:
                loss, norm = trainee.step(batch, step)
                done, step = done + 1, step + 1
                guard.check(loss, norm, step)  # a diverged run stops here
                if done % 20 == 1:
                    bar.set_postfix(loss=f"{_value(loss):.3f}")
                if resume.due(step):
                    resume.save({"epoch": epoch, "batch": done, "step": step,
                                 "epoch_gen": epoch_gen, "best": best,
                                 "trainee": trainee.state_dict(), "run": run.state_dict()},
                                {"rng": rng_state(), "progress": trainee.progress()})
            seconds = time.perf_counter() - t0
            logged = trainee.end_epoch(epoch, seconds, run)
            logged["time/epoch_s"] = seconds = time.perf_counter() - t0  # with the evaluation
            run.log(logged, step=epoch)
            if info.is_main:
                shown = ", ".join(f"{k} {logged[k]:.4g}" for k in trainee.headline if k in logged)
                tqdm.write(f"{desc}: {shown} ({seconds:.0f} s)")
            if select is None:
                continue
            if best is None or logged[select] < best["metrics"][select]:
                best = {"epoch": epoch, "metrics": logged, "weights": trainee.weights()}
            elif patience is not None and epoch - best["epoch"] >= patience:
                if info.is_main:
                    tqdm.write(f"{stage}: no better {select} for {patience} epochs, stopping")
                break
        run.log(trainee.finish(best))
        if info.is_main:
            checkpoint = Path(checkpoint)
            trainee.save(checkpoint)  # no run id inside: the same bytes for the same model
            if run.run_id:
                tag_checkpoint(run.run_id, checkpoint)  # how evaluate and render find the run
                exported = trainee.export(checkpoint)
                if exported is not None:  # an MLflow model: pyfunc.load_model, models serve
                    kind, module, example = exported
                    logged_model = log_model(module, example)
                    if kind is not None:  # genmodels-<entry>@candidate
                        register(entry_name(stage), kind, logged_model.model_uri, checkpoint)
        resume.finish()
        return dict(run.latest)
