"""The model registry: every training run a new `candidate` version, `promote` moves
`champion` only on a lower test metric, `generate` loads a registered model by alias."""

import mlflow
import pytest
import torch

from genmodels import model_registry as reg
from genmodels.cli import main
from genmodels.export import NextTokenLogProbs, log_model, text_example
from genmodels.text.registry import build_model, save_checkpoint

VOCAB = ["<unk>", "<nl>", "<eos>", "holmes", "watson", "saw", "the", "dog", "."]


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # download_checkpoint's cache
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    return tmp_path


def train_and_evaluate(folder, seed: int, ppl: float | None) -> str:
    """What train_text and evaluate_text do for the registry: a checkpoint, a logged and
    registered model, then an evaluation run tagged with the training run."""
    torch.manual_seed(seed)
    cfg, model = build_model("rnn", {"cell": "lstm", "n_embd": 8, "n_hidden": 8}, VOCAB)
    path = folder / f"toy_{seed}.pt"
    client = mlflow.MlflowClient()  # no active experiment set: the other tests' stores differ
    found = client.get_experiment_by_name("genmodels")
    exp = found.experiment_id if found else client.create_experiment("genmodels")
    with mlflow.start_run(experiment_id=exp) as run:
        save_checkpoint(path, model, cfg, "rnn", VOCAB, run_id=run.info.run_id)
        info = log_model(NextTokenLogProbs(model), text_example(len(VOCAB)))
        reg.register("toy", "text", info.model_uri, path)
    if ppl is not None:
        with mlflow.start_run(experiment_id=exp, tags={reg.MODEL_RUN_TAG: run.info.run_id}):
            mlflow.log_metric("test/ppl", ppl)
    return str(path)


def aliases(name="genmodels-toy"):
    client = mlflow.MlflowClient()
    return {a: str(client.get_model_version_by_alias(name, a).version)
            for a in client.get_registered_model(name).aliases}


def test_promote_moves_champion_only_on_a_lower_metric(store, capsys):
    train_and_evaluate(store, 0, ppl=10.0)
    assert aliases() == {"candidate": "1"}
    assert main(["promote", "toy"]) == 0
    assert "champion -> version 1" in capsys.readouterr().out  # there was none
    assert aliases() == {"candidate": "1", "champion": "1"}

    train_and_evaluate(store, 1, ppl=12.0)  # worse
    assert main(["promote", "toy"]) == 0
    out = capsys.readouterr().out
    assert "kept champion version 1" in out and "test/ppl 12, not lower" in out
    assert aliases() == {"candidate": "2", "champion": "1"}

    train_and_evaluate(store, 2, ppl=8.0)  # better
    assert main(["promote", "toy"]) == 0
    assert "test/ppl 8 < 10 of version 1" in capsys.readouterr().out
    assert aliases() == {"candidate": "3", "champion": "3"}

    train_and_evaluate(store, 3, ppl=None)  # not evaluated yet: no decision
    assert main(["promote", "toy"]) == 2
    assert "has no test/ppl yet" in capsys.readouterr().err
    assert aliases() == {"candidate": "4", "champion": "3"}


def test_version_tags_name_the_checkpoint_and_its_dvc_hash(store):
    path = train_and_evaluate(store, 0, ppl=10.0)
    version = mlflow.MlflowClient().get_model_version("genmodels-toy", "1")
    assert version.tags["checkpoint"] == "checkpoint/toy_0.pt"
    assert version.tags["checkpoint_md5"] == reg.md5(path)
    assert version.tags["metric"] == "test/ppl"


def test_generate_loads_the_champion_by_alias(store, capsys):
    train_and_evaluate(store, 0, ppl=10.0)
    best = train_and_evaluate(store, 1, ppl=5.0)
    main(["promote", "toy"])
    capsys.readouterr()
    args = ["generate", "--prompt", "holmes saw", "--words", "8", "--temperature", "0.7"]
    assert main([*args, "--checkpoint", best]) == 0
    from_file = capsys.readouterr().out
    assert main([*args, "--checkpoint", "models:/genmodels-toy@champion"]) == 0
    assert capsys.readouterr().out == from_file
    assert main([*args, "--checkpoint", "models:/genmodels-toy/2"]) == 0
    assert capsys.readouterr().out == from_file


def test_an_unknown_alias_is_a_one_line_error(store, capsys):
    train_and_evaluate(store, 0, ppl=10.0)
    capsys.readouterr()
    assert main(["generate", "--checkpoint", "models:/genmodels-toy@champion"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genmodels: error: models:/genmodels-toy@champion") and err.count("\n") == 1


def test_promote_judges_the_model_in_the_workspace(store, capsys):
    """After `dvc exp apply <best>` the workspace holds the best experiment's checkpoint,
    not the last one trained: promote makes that version the candidate first."""
    import shutil

    best = train_and_evaluate(store, 0, ppl=8.0)
    train_and_evaluate(store, 1, ppl=12.0)  # trained last: the candidate alias points here
    assert aliases() == {"candidate": "2"}
    (store / "data/models/text").mkdir(parents=True)
    shutil.copy(best, store / "data/models/text/toy.pt")  # what `dvc exp apply` would do
    assert main(["promote", "toy"]) == 0
    out = capsys.readouterr().out
    assert "candidate: version 1, the checkpoint in the workspace" in out
    assert aliases() == {"candidate": "1", "champion": "1"}
