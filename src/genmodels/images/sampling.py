"""Many prior samples of an image model, in batches: what its evaluations score.

Its own file so that the evaluations that only draw samples (the opt-in Inception-FID,
``inception.py``) do not depend on the classifier-space evaluation (``evaluate.py``)
and do not go stale when it changes.
"""

from __future__ import annotations

import torch
from tqdm import tqdm


@torch.no_grad()
def draw_samples(model, n: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` images (N, C, H, W) in [0, 1] from ``model.sample``, ``batch_size`` at a time."""
    return torch.cat([model.sample(min(batch_size, n - i), generator)
                      for i in tqdm(range(0, n, batch_size), desc="sampling", leave=False)])
