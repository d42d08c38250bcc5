"""The metric classifier's features of the real images, extracted once for every model.

Each image model's evaluation compares its samples with the 10,000 test images, and
the 55,000 training images give the floor and the novelty. Their features do not
depend on the model, so ``evaluate_classifier`` extracts them once
(``data/features/classifier.pt``) and every ``evaluate_image`` reads them, instead of
putting 65,000 images through the classifier per model (20.9 s of a 37 s evaluation
of ``vae16`` on a 2-core Zen 4). The file names the checkpoint it came from (SHA-256),
so features of another classifier are refused, not silently compared.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genmodels.images.data import load_split
from genmodels.images.metrics import extract
from genmodels.io import torch_save
from genmodels.tracking import sha256

FORMAT = 1
SPLITS = ("test", "train")
BATCH = 1000  # images per classifier call (the features do not depend on it)


def save_real_features(classifier, classifier_path: str | Path, data_dir: str | Path,
                       out: str | Path) -> dict:
    """Features (N, F) and class probabilities (N, K) of the test and training images."""
    saved: dict = {"format": FORMAT, "classifier_sha256": sha256(classifier_path)}
    for split in SPLITS:
        images, _ = load_split(data_dir, split)
        feats, probs = extract(classifier, images, BATCH)
        saved[split] = {"feats": feats, "probs": probs}
    torch_save(saved, out)
    return saved


def load_real_features(path: str | Path, classifier_path: str | Path,
                       sizes: dict[str, int]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{split: (feats, probs)}`` from ``save_real_features``' file, checked against the
    classifier checkpoint and the number of images per split (``sizes``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the evaluate_classifier stage first")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (unpickling raises many kinds): one line instead
        raise ValueError(f"{path}: not a features file ({type(err).__name__})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path}: not a features file of format {FORMAT}")
    if saved["classifier_sha256"] != sha256(classifier_path):
        raise ValueError(f"{path}: extracted by another classifier than {classifier_path}; "
                         "run the evaluate_classifier stage again")
    out = {}
    for split, n in sizes.items():
        feats, probs = saved[split]["feats"], saved[split]["probs"]
        if len(feats) != n or len(probs) != n:
            raise ValueError(f"{path}: {len(feats)} {split} features for {n} {split} images; "
                             "run the evaluate_classifier stage again")
        out[split] = (feats, probs)
    return out
