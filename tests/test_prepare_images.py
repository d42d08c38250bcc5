"""Fashion-MNIST preparation on the real files from the data mirror."""

import json

import pytest
import torch

from genmodels.data.download import download_all
from genmodels.data.images import (
    PrepareImagesConfig,
    load_split,
    prepare,
    save_prepared,
    split_indices,
)
from genmodels.data.sources import registry


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, mirror):
    root = tmp_path_factory.mktemp("fashion")
    download_all({"fashion-mnist": registry()["fashion-mnist"]}, root / "raw", str(mirror), 5)
    splits, meta = prepare(root / "raw" / "fashion-mnist", PrepareImagesConfig(val_size=5000))
    save_prepared(splits, meta, root / "prepared")
    return root / "prepared"


def test_split_sizes_shapes_and_dtypes(prepared):
    sizes = {}
    for split in ("train", "val", "test"):
        data = load_split(prepared, split)
        images, labels = data["images"], data["labels"]
        assert images.dtype == torch.float32 and labels.dtype == torch.int64
        assert images.shape[1:] == (1, 28, 28) and images.shape[0] == labels.shape[0]
        assert 0.0 <= images.min() and images.max() <= 1.0
        assert set(labels.unique().tolist()) == set(range(10))
        sizes[split] = labels.shape[0]
    assert sizes == {"train": 55_000, "val": 5_000, "test": 10_000}
    assert sizes["train"] + sizes["val"] == 60_000


def test_meta_records_classes_and_training_statistics(prepared):
    meta = json.loads((prepared / "meta.json").read_text())
    assert meta["classes"][0] == "T-shirt/top" and len(meta["classes"]) == 10
    train = load_split(prepared, "train")["images"]
    assert meta["mean"] == pytest.approx(train.mean().item(), rel=1e-5)
    assert meta["std"] == pytest.approx(train.std().item(), rel=1e-4)
    assert meta["sizes"] == {"train": 55_000, "val": 5_000, "test": 10_000}


def test_validation_split_is_disjoint_seeded_and_complete():
    a = split_indices(60_000, 5_000, seed=0)
    assert len(set(a["train"].tolist()) & set(a["val"].tolist())) == 0
    assert sorted(torch.cat([a["train"], a["val"]]).tolist()) == list(range(60_000))
    assert torch.equal(a["val"], split_indices(60_000, 5_000, seed=0)["val"])
    assert not torch.equal(a["val"], split_indices(60_000, 5_000, seed=1)["val"])
    with pytest.raises(ValueError, match="val_size"):
        split_indices(100, 100, seed=0)


def test_missing_idx_files_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Fashion-MNIST IDX files"):
        prepare(tmp_path, PrepareImagesConfig())
