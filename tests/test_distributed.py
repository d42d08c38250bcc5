"""Data parallelism: a training stage under `torchrun --nproc_per_node=2` (gloo, CPU) ends
where one process with the same global batch ends.

Each rank takes its contiguous share of every global batch and the ranks' gradients are
averaged, so the two runs differ only in the order of float additions: metrics agree to
a relative 1e-6 and weights to 1e-5. The configs leave out what differs by design: dropout
(each rank draws its own masks), batch norm (each rank's own batch statistics) and the
VAE's sampled codes; so the image model is the AE and the LSTM has no dropout. Its word
dropout to <unk> stays on: every rank must draw the same stream before taking its columns.
The LSTM trains in fp32: bf16 autocast (the default on a CPU with AMX) rounds each rank's
products to 8 bits of mantissa, and half a batch rounds differently (1e-3 apart).
The AE's batch of 15 splits 8 + 7, so the ranks' gradients must be weighted by their shares.
"""

import csv
import json
import os
import subprocess
import sys

import mlflow
import pytest
import torch
import yaml

from genmodels.data.text import Vocab, tokenize
from genmodels.distributed import Dist, shard
from genmodels.tracking import flatten

from conftest import ROOT, VENV_BIN, VERSE, write_fake_images

PARAMS = {
    "prepare_text": {"toy": {"split": "blocks", "val_fraction": 0.1, "test_fraction": 0.1,
                             "newline": "line"}},
    "train_image": {"ae": dict(family="ae", latent_dim=2, channels=[4, 8], hidden_dim=8,
                               epochs=2, batch_size=15, lr=1e-3, seed=0, limit_batches=4,
                               precision="fp32")},  # bf16 rounds half a batch differently
    "train_text": {"lstm": dict(
        corpus="toy", arch="rnn",
        model=dict(cell="lstm", n_embd=16, n_hidden=16, n_layer=1, dropout=0.0,
                   tie_weights=True, cutoffs=[20]),
        train=dict(epochs=2, batch_size=4, bptt=8, lr=3e-3, min_lr=3e-4, warmup=2,
                   weight_decay=0.01, clip=0.5, patience=2, eval_batch_size=2, seed=0,
                   limit_batches=6, unk_alpha=0.5, precision="fp32"))},
}
STAGES = {  # script, its arguments, the checkpoint's flag
    "ae": ("train_image.py", ["--name", "ae", "--data", "images", "--threads", "1"], "--checkpoint"),
    "lstm": ("train_text.py", ["--name", "lstm", "--data", "text"], "--model"),
}


def test_shards_split_every_batch_in_order():
    batch = torch.arange(10)  # indices of one global batch
    parts = [shard(batch, Dist(rank, 3)) for rank in range(3)]
    assert torch.equal(torch.cat(parts), batch) and [len(p) for p in parts] == [4, 3, 3]
    stream = torch.arange(24).view(4, 6)  # (B, L): 4 columns of a token stream
    assert torch.equal(shard(stream, Dist(1, 2)), stream[2:])
    assert shard(batch, Dist()) is batch  # one process: all of it


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Random images, a few lines of text, and a params.yaml for both stages."""
    root = tmp_path_factory.mktemp("distributed")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    write_fake_images(root / "images", {"train": 160, "val": 40})
    tokens = tokenize(VERSE * 12, "line")
    vocab = Vocab.build(tokens)
    vocab.save(root / "text" / "vocab.json")
    ids = torch.tensor(vocab.encode(tokens))
    torch.save({"ids": ids[:400]}, root / "text" / "train.pt")
    torch.save({"ids": ids[400:]}, root / "text" / "val.pt")
    return root


def run_stage(workdir, nproc: int, name: str):
    """The stage ``name`` as one process, or under torchrun with ``nproc``; its output folder."""
    script, args, checkpoint_flag = STAGES[name]
    out = workdir / f"{name}-{nproc}"
    launch = [sys.executable] if nproc == 1 else [
        str(VENV_BIN / "torchrun"), "--standalone", f"--nproc_per_node={nproc}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    result = subprocess.run(
        [*launch, str(ROOT / "stages" / script), *args, checkpoint_flag, str(out / "model.pt"),
         "--metrics", str(out / "metrics.json"), "--plots", str(out / "plots.csv")],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.mark.parametrize("name", STAGES)  # ~17 s each on a quiet 2-core CPU: default suite
def test_two_processes_match_one_with_the_same_global_batch(workdir, name):
    one, two = run_stage(workdir, 1, name), run_stage(workdir, 2, name)
    metrics = [flatten(json.loads((d / "metrics.json").read_text())) for d in (one, two)]
    assert metrics[0].keys() == metrics[1].keys() and "val.loss" in metrics[0]
    assert metrics[1] == pytest.approx(metrics[0], rel=1e-6)
    curves = [list(csv.DictReader((d / "plots.csv").open())) for d in (one, two)]
    assert len(curves[0]) == len(curves[1]) == 2  # one row per epoch
    for a, b in zip(*curves, strict=True):
        assert {k: float(v) for k, v in b.items()} == pytest.approx(
            {k: float(v) for k, v in a.items()}, rel=1e-6)
    weights = [torch.load(d / "model.pt", weights_only=True)["state_dict"] for d in (one, two)]
    for k in weights[0]:
        torch.testing.assert_close(weights[1][k], weights[0][k], rtol=1e-5, atol=1e-6)
    # Only rank 0 tracks: one MLflow run per launch.
    client = mlflow.MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    stage = "train_image@ae" if name == "ae" else "train_text@lstm"
    runs = client.search_runs([client.get_experiment_by_name("genmodels").experiment_id],
                              f"tags.`dvc.stage` = '{stage}'")
    assert len(runs) == 2
    print(f"\n{name}: 1 process {metrics[0]}\n{name}: 2 processes {metrics[1]}")
