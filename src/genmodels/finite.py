"""A diverged run is a failure: non-finite losses, gradients and weights stop the work.

Every training loop calls :meth:`FiniteGuard.check` after each optimizer step with
the step's loss and gradient norm; the first NaN or infinity raises
:class:`NonFiniteError`, naming the stage, the epoch, the step and the last
finite loss. The loop raises out of its tracking run, so no checkpoint is
written and the run's metrics and plots files are removed (``tracking.py``).
Loading a checkpoint whose weights are not finite fails the same way
(:func:`check_weights`), so evaluation never scores a diverged model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch

HINT = "the run diverged: lower lr (or the gradient clip) and run again"


class NonFiniteError(RuntimeError):
    """A loss, gradient norm or weight that is NaN or infinite."""


def _value(x: float | torch.Tensor | None) -> float | None:
    return None if x is None else float(x.item() if isinstance(x, torch.Tensor) else x)


class FiniteGuard:
    """Checks each step's loss and gradient norm; remembers the last finite loss."""

    def __init__(self, where: str):
        self.where = where  # the stage and epoch, as the progress bar names them
        self.last: tuple[int, float] | None = None  # (step, loss) of the last finite step

    def check(self, loss: float | torch.Tensor, grad_norm: float | torch.Tensor | None = None,
              step: int = 0) -> None:
        """Raise :class:`NonFiniteError` if ``loss`` or ``grad_norm`` is NaN or infinite."""
        loss_v, norm_v = _value(loss), _value(grad_norm)
        bad = [f"{name} is {v}" for name, v in (("loss", loss_v), ("gradient norm", norm_v))
               if v is not None and not math.isfinite(v)]
        if not bad:
            self.last = (step, loss_v)
            return
        last = (f"last finite loss {self.last[1]:.4g} at step {self.last[0]}" if self.last
                else "no finite loss before it in this epoch")
        raise NonFiniteError(f"{self.where}: {' and '.join(bad)} at step {step} ({last}); {HINT}")


def perplexity(loss: float) -> float:
    """``exp(loss)``, infinite (not an OverflowError) past float range: a finite loss above
    ~709 nats a token is a terrible model, not a crash."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def grad_norm(parameters: Iterable[torch.nn.Parameter]) -> torch.Tensor | None:
    """The total 2-norm of the gradients (as ``clip_grad_norm_`` computes it); None if none."""
    grads = [p.grad for p in parameters if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else None


class GradNorms:
    """Records each optimizer's gradient norm just before it steps, for loops whose model
    runs its own optimizers (the image families' ``train_step``); :meth:`pop` gives the
    worst norm since the last call (NaN if any was NaN)."""

    def __init__(self, optimizers: Iterable[torch.optim.Optimizer]):
        self._norms: list[float] = []
        for opt in optimizers:  # registered after distributed.GradientAverager: averaged grads
            opt.register_step_pre_hook(self._record)

    def _record(self, opt: torch.optim.Optimizer, args, kwargs) -> None:
        norm = grad_norm(p for group in opt.param_groups for p in group["params"])
        if norm is not None:
            self._norms.append(norm.item())

    def pop(self) -> float | None:
        norms, self._norms = self._norms, []
        if not norms:
            return None
        bad = [n for n in norms if not math.isfinite(n)]
        return bad[0] if bad else max(norms)


def check_weights(state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise :class:`NonFiniteError` if any floating-point tensor holds a NaN or infinity."""
    bad = [k for k, v in state_dict.items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise NonFiniteError(f"{what} has non-finite weights in {len(bad)} of {len(state_dict)} "
                             f"tensors (first: {bad[0]}): it comes from a diverged run; retrain it "
                             "with a lower lr")
