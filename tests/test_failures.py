"""Failure modes (issue 15): a diverged run fails, bad inputs get one line, nothing is left over.

Each test stands for one way the pipeline used to fail badly: a diverged run that
counted as a success, a raw traceback for a bad checkpoint or bad params, a tracking
store that failed after minutes, a staging folder left behind by a killed download.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from genmodels.checkpoints import CheckpointError
from genmodels.config import ParamsError, from_dict, load_section
from genmodels.data.download import download_all
from genmodels.data.text import Vocab, tokenize
from genmodels.finite import NonFiniteError
from genmodels.images.classifier import ClassifierConfig, load_classifier
from genmodels.images.registry import build_model as build_image_model
from genmodels.images.registry import config_from_dict
from genmodels.images.registry import load_checkpoint as load_image_checkpoint
from genmodels.images.registry import save_checkpoint as save_image_checkpoint
from genmodels.images.train import train as train_image
from genmodels.images.train_classifier import train_classifier
from genmodels.io import write_json
from genmodels.stage import run_stage
from genmodels.text.registry import build_model as build_text_model
from genmodels.text.registry import load_checkpoint as load_text_checkpoint
from genmodels.text.registry import save_checkpoint as save_text_checkpoint
from genmodels.text.train import TrainSettings, TrainTextConfig
from genmodels.text.train import train as train_text
from genmodels.tracking import TrackingError, model_run, sqlite_path, start_run

from conftest import ROOT, VENV_BIN, VERSE, load_stage, write_fake_images

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TEXT_MODEL = dict(n_embd=16, n_head=2, n_layer=1, context=16, dropout=0.1, tie_weights=True,
                  cutoffs=[])
TEXT_TRAIN = dict(epochs=2, batch_size=4, bptt=8, lr=3e-3, min_lr=3e-4, warmup=2,
                  weight_decay=0.01, clip=0.5, patience=2, eval_batch_size=2, seed=0,
                  limit_batches=3)
IMAGE_TINY = dict(channels=[4, 8], hidden_dim=8, epochs=2, batch_size=16, lr=1e-3, seed=0,
                  limit_batches=3)
IMAGE_VARIANTS = {
    "vae": dict(family="vae", latent_dim=2, **IMAGE_TINY),
    "vaegan": dict(family="vaegan", latent_dim=8, disc_channels=[4, 8], gamma=1.0, beta=1.0,
                   real_label=1.0, beta1=0.5, **IMAGE_TINY),
}
CLASSIFIER = dict(channels=[4, 8], feature_dim=8, dropout=0.0, epochs=2, batch_size=16, lr=1e-3,
                  seed=0, limit_batches=3)
DIVERGENT_LR = 1e30  # finite, so the params accept it; the first steps overflow to NaN


def strict_json(path: Path):
    """JSON as the standard defines it: NaN and Infinity are errors, not numbers."""
    def refuse(name):
        raise ValueError(f"{path}: non-standard JSON constant {name}")
    return json.loads(path.read_text(), parse_constant=refuse)


def one_line(text: str) -> str:
    assert text.endswith("\n") and text.count("\n") == 1, f"not one line: {text!r}"
    assert "Traceback" not in text
    return text.strip()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite MLflow store for the module (creating one takes seconds)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow artifacts land under tmp_path/mlruns
    return tmp_path


@pytest.fixture
def corpus(tmp_path):
    """A prepared-corpus folder made from a few lines."""
    tokens = tokenize(VERSE * 12, "line")
    vocab = Vocab.build(tokens)
    folder = tmp_path / "prepared"
    vocab.save(folder / "vocab.json")
    ids = torch.tensor(vocab.encode(tokens))
    a, b = int(len(ids) * 0.7), int(len(ids) * 0.85)
    for split, part in (("train", ids[:a]), ("val", ids[a:b]), ("test", ids[b:])):
        torch.save({"ids": part}, folder / f"{split}.pt")
    return folder


@pytest.fixture
def images(tmp_path):
    return write_fake_images(tmp_path / "images", {"train": 80, "val": 40, "test": 60})


def text_checkpoint(path: Path, poison: bool = False) -> Path:
    cfg, model = build_text_model("transformer", TEXT_MODEL, ["<unk>", "a", "b", "c"])
    if poison:
        with torch.no_grad():
            next(model.parameters())[0] = float("nan")
    save_text_checkpoint(path, model, cfg, "transformer", ["<unk>", "a", "b", "c"])
    return path


def image_checkpoint(path: Path, poison: bool = False) -> Path:
    model = build_image_model(config_from_dict(IMAGE_VARIANTS["vae"], "x"))
    if poison:
        with torch.no_grad():
            next(model.parameters()).fill_(float("inf"))
    save_image_checkpoint(model, (1, 28, 28), path)
    return path


# --- 1. Non-finite means failure -----------------------------------------------------------


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_params_that_are_not_finite_are_refused_at_load_time(tmp_path, value):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"train_text": {"x": {
        "corpus": "c", "arch": "transformer", "model": TEXT_MODEL, "train": TEXT_TRAIN}}}))
    params.write_text(params.read_text().replace("lr: 0.003", f"lr: {value}"))
    with pytest.raises(ParamsError, match=r"train_text\.x\.train\.lr: Input should be a finite"):
        load_section(params, "train_text.x", TrainTextConfig)
    with pytest.raises(ParamsError, match="finite"):
        config_from_dict({**IMAGE_VARIANTS["vae"], "lr": float(value.replace(".", ""))}, "v")


def test_diverging_text_training_fails_naming_where_and_leaves_nothing(corpus, tmp_path, store,
                                                                       in_tmp):
    cfg = TrainTextConfig(corpus="c", arch="transformer", model=TEXT_MODEL,
                          train={**TEXT_TRAIN, "lr": DIVERGENT_LR, "min_lr": 0.0})
    out = {k: tmp_path / f"out.{k}" for k in ("pt", "json", "csv")}
    with pytest.raises(NonFiniteError) as err:
        train_text(cfg, corpus, out["pt"], out["json"], out["csv"], stage="train_text@x")
    message = str(err.value)
    assert message.startswith("train_text@x epoch 1: loss is nan")
    assert "at step 2 (last finite loss" in message and "lower lr" in message
    assert "\n" not in message
    assert not any(p.exists() for p in out.values())


@pytest.mark.parametrize("family", ["vae", "vaegan"])
def test_diverging_image_training_fails_and_leaves_nothing(images, tmp_path, store, in_tmp,
                                                           family):
    cfg = config_from_dict({**IMAGE_VARIANTS[family], "lr": DIVERGENT_LR}, family)
    out = {k: tmp_path / f"out.{k}" for k in ("pt", "json", "csv")}
    with pytest.raises(NonFiniteError, match=rf"^train_image@{family} epoch 1: .*lower lr"):
        train_image(cfg, images, out["pt"], out["json"], out["csv"], stage=f"train_image@{family}")
    assert not any(p.exists() for p in out.values())


def test_diverging_classifier_training_fails_and_leaves_nothing(images, tmp_path, store, in_tmp):
    cfg = ClassifierConfig(**{**CLASSIFIER, "lr": DIVERGENT_LR})
    out = {k: tmp_path / f"out.{k}" for k in ("pt", "json", "csv")}
    with pytest.raises(NonFiniteError, match=r"^train_classifier epoch 1: .*step 2 .*lower lr"):
        train_classifier(cfg, images, out["pt"], out["json"], out["csv"])
    assert not any(p.exists() for p in out.values())


def test_a_failed_run_removes_the_metrics_and_plots_it_wrote(tmp_path, store, in_tmp):
    metrics, plots = tmp_path / "m.json", tmp_path / "p.csv"
    with pytest.raises(NonFiniteError):
        with start_run("train@x", {}, metrics_path=metrics, plots_path=plots) as run:
            run.log({"train/loss": 1.0}, step=1)  # epoch 1 went well
            assert metrics.exists() and plots.exists()
            raise NonFiniteError("epoch 2 diverged")
    assert not metrics.exists() and not plots.exists()


def test_metrics_files_are_strict_json(tmp_path, store, in_tmp):
    with start_run("evaluate@x", {}, metrics_path=tmp_path / "m.json") as run:
        run.log({"test/fid": math.nan, "test/kid": math.inf, "test/acc": 0.5})
    assert strict_json(tmp_path / "m.json") == {"test": {"fid": None, "kid": None, "acc": 0.5}}
    write_json(tmp_path / "w.json", {"a": [1.0, -math.inf], "b": {"c": math.nan}})
    assert strict_json(tmp_path / "w.json") == {"a": [1.0, None], "b": {"c": None}}


def test_evaluation_refuses_checkpoints_with_non_finite_weights(tmp_path):
    text = text_checkpoint(tmp_path / "text.pt", poison=True)
    with pytest.raises(CheckpointError, match="non-finite weights.*diverged") as err:
        load_text_checkpoint(text)
    assert str(text) in str(err.value) and "\n" not in str(err.value)
    image = image_checkpoint(tmp_path / "image.pt", poison=True)
    with pytest.raises(CheckpointError, match="non-finite weights"):
        load_image_checkpoint(image)


# --- 3. A bad checkpoint gets one line -----------------------------------------------------


class Hostile:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


BAD_FILES = {
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(text_checkpoint(p).read_bytes()[:500]),
    "random bytes": lambda p: p.write_bytes(bytes(range(256)) * 20),
    "text": lambda p: p.write_text("hello world\n"),
    "hostile pickle": lambda p: torch.save(Hostile(), p),
    "a list": lambda p: torch.save([1, 2], p),
    "missing": lambda p: None,
}


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.parametrize("loader", [load_text_checkpoint, load_image_checkpoint, load_classifier])
def test_a_bad_checkpoint_is_one_line_without_unsafe_advice(tmp_path, kind, loader):
    path = tmp_path / "model.pt"
    BAD_FILES[kind](path)
    with pytest.raises(CheckpointError) as err:
        loader(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "weights_only" not in message and "trusted" not in message
    if kind == "hostile pickle":
        assert "could run code" in message


def test_a_checkpoint_of_the_other_kind_is_named(tmp_path):
    image = image_checkpoint(tmp_path / "image.pt")
    text = text_checkpoint(tmp_path / "text.pt")
    with pytest.raises(CheckpointError, match="an image-model checkpoint .family 'vae', from "
                                              "train_image.; expected a text-model checkpoint"):
        load_text_checkpoint(image)
    with pytest.raises(CheckpointError, match="a text-model checkpoint .arch 'transformer', from "
                                              "train_text.; expected an image-model checkpoint"):
        load_image_checkpoint(text)
    with pytest.raises(CheckpointError, match="image-model checkpoint.*expected a classifier"):
        load_classifier(image)


def test_cli_prints_a_bad_checkpoint_as_one_line(tmp_path, capsys):
    from genmodels.cli import main

    image = image_checkpoint(tmp_path / "image.pt")
    assert main(["generate", "--checkpoint", str(image), "--prompt", "a"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"genmodels: error: {image}: an image-model checkpoint")
    (tmp_path / "bad.pt").write_bytes(os.urandom(1000))
    assert main(["generate", "--checkpoint", str(tmp_path / "bad.pt")]) == 2
    assert "not a PyTorch checkpoint" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("words", ["0", "-5", "1000000000", "many"])
def test_cli_refuses_words_out_of_range(words, capsys):
    from genmodels.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["generate", "--words", words])
    assert exit_.value.code == 2
    assert "--words" in capsys.readouterr().err.splitlines()[-1]
    assert build_parser().parse_args(["generate", "--words", "100000"]).words == 100_000


def test_ctrl_c_in_interactive_generation_is_one_line_and_130(tmp_path, monkeypatch, capsys):
    import genmodels.text.generate
    from genmodels.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(genmodels.text.generate, "complete", interrupted)
    monkeypatch.setattr(sys, "stdin", io.StringIO("a b\n"))
    assert main(["generate", "-i", "--checkpoint", str(text_checkpoint(tmp_path / "t.pt"))]) == 130
    assert one_line(capsys.readouterr().err) == "genmodels: interrupted"


# --- 4. Tracking store errors in seconds ----------------------------------------------------


def test_unopenable_sqlite_store_fails_within_seconds_in_one_line(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/no/such/folder/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    start = time.monotonic()
    with pytest.raises(TrackingError) as err:
        with start_run("x", {}):
            pass
    with pytest.raises(TrackingError):
        with model_run(tmp_path / "x.pt", "evaluate_image@x"):
            pass
    assert time.monotonic() - start < 10
    assert uri in str(err.value) and "does not exist" in str(err.value)
    assert "\n" not in str(err.value)
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("not a database\n" * 100)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{not_a_db}")
    with pytest.raises(TrackingError, match="not a database"):
        with start_run("x", {}):
            pass


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_sqlite_folder_fails_fast(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder}/mlflow.db")
    with pytest.raises(TrackingError, match="no write permission"):
        with start_run("x", {}):
            pass


def test_sqlite_uris_name_their_file():
    assert sqlite_path("sqlite:///mlflow.db") == Path("mlflow.db")
    assert sqlite_path("sqlite:////abs/x.db") == Path("/abs/x.db")
    assert sqlite_path("sqlite:///:memory:") is None


# --- 5. Every config error before work starts, in one line ---------------------------------


@pytest.mark.parametrize("cls, data", [
    (None, {**IMAGE_VARIANTS["vae"], "channels": []}),
    (None, {**IMAGE_VARIANTS["vaegan"], "disc_channels": []}),
    (ClassifierConfig, {**CLASSIFIER, "channels": []}),
    (TrainSettings, {"device": "tpu"}),
    (TrainSettings, {"device": "cuda:x"}),
    (TrainSettings, {"lr": 1e-3, "min_lr": 1e-2}),
])
def test_config_refuses_empty_channels_unknown_devices_and_min_lr_above_lr(cls, data):
    with pytest.raises(ParamsError) as err:
        config_from_dict(data, "s") if cls is None else from_dict(cls, data, "s")
    assert "\n" not in str(err.value)


def test_known_devices_are_accepted():
    for device in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        assert from_dict(TrainSettings, {"device": device}, "s").device == device


def text_params(path: Path, **entry) -> Path:
    base = {"corpus": "toy", "arch": "transformer", "model": TEXT_MODEL, "train": TEXT_TRAIN}
    params = {"train_text": {"x": {**base, **entry}},
              "prepare_text": {"toy": {"split": "blocks", "val_fraction": 0.1,
                                       "test_fraction": 0.1, "newline": "line"}}}
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize("entry, message", [
    ({"arch": "lstm"}, "train_text.x.arch: unknown arch 'lstm'"),
    ({"model": {**TEXT_MODEL, "n_head": 0}}, "train_text.x.model.n_head: Input should be greater"),
    ({"model": {**TEXT_MODEL, "colour": 1}}, "train_text.x.model.colour: unknown key"),
    ({"train": {**TEXT_TRAIN, "device": "tpu"}}, "train_text.x.train.device: expected auto"),
])
def test_train_text_validates_the_model_before_data_and_tracking(tmp_path, monkeypatch, capsys,
                                                                 entry, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    params = text_params(tmp_path / "params.yaml", **entry)
    argv = ["--name", "x", "--data", str(tmp_path / "no-corpus"), "--model", "m.pt",
            "--metrics", "m.json", "--plots", "p.csv", "--params", str(params)]
    assert load_stage("train_text").main(argv) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("train_text@x: invalid params: ") and message in line
    assert not (tmp_path / "mlflow.db").exists()  # the tracking store was not touched


STAGE_ARGS = {
    "download": ["--out", "raw"],
    "prepare_images": ["--raw", "r", "--out", "o", "--metrics", "m.json"],
    "prepare_text": ["--corpus", "toy", "--raw", "r", "--out", "o", "--metrics", "m.json"],
    "cities": ["--events", "e.csv", "--out", "o"],
    "report": ["--image-metrics", "x", "--image-figures", "x", "--text-metrics", "x",
               "--text-figures", "x", "--cities", "x", "--models", "x", "--out", "README.md"],
    "train_classifier": ["--data", "d", "--checkpoint", "c.pt", "--metrics", "m", "--plots", "p"],
    "train_image": ["--name", "x", "--data", "d", "--checkpoint", "c.pt", "--metrics", "m",
                    "--plots", "p"],
    "evaluate_image": ["--name", "x", "--model", "m.pt", "--classifier", "c.pt", "--data", "d",
                       "--features", "f.pt", "--metrics", "m"],
    "render_image": ["--name", "x", "--model", "m.pt", "--data", "d", "--train-plots", "p",
                     "--out", "o"],
    "train_text": ["--name", "x", "--data", "d", "--model", "m.pt", "--metrics", "m",
                   "--plots", "p"],
    "evaluate_text": ["--name", "x", "--data", "d", "--model", "m.pt", "--metrics", "m",
                      "--samples", "s", "--scores", "s.pt"],
    "ensemble_text": ["--name", "x", "--scores", "d", "--metrics", "m.json"],
    "render_text": ["--name", "x", "--corpus", "toy", "--model", "m.pt", "--plots", "p",
                    "--out", "o"],
    "inception_reference": ["--data", "d", "--features", "f.pt", "--metrics", "m"],
    "inception_fid": ["--name", "x", "--model", "m.pt", "--features", "f.pt", "--metrics", "m"],
}
STAGE_NAMES = {"prepare_text": "prepare_text@toy", "train_image": "train_image@x",
               "evaluate_image": "evaluate_image@x", "render_image": "render_image@x",
               "train_text": "train_text@x", "evaluate_text": "evaluate_text@x",
               "render_text": "render_text@x", "inception_fid": "inception_fid@x",
               "ensemble_text": "ensemble_text@x"}


NO_PARAMS = {"evaluate_classifier", "mlflow_runs"}  # stages that read no params.yaml section


def test_stage_args_cover_every_stage_script():
    assert sorted([*STAGE_ARGS, *NO_PARAMS]) == sorted(p.stem for p in (ROOT / "stages").glob("*.py"))


@pytest.mark.parametrize("stage", sorted(STAGE_ARGS))
def test_every_stage_prints_a_params_error_as_one_line(stage, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("unrelated: {}\n")
    assert load_stage(stage).main([*STAGE_ARGS[stage], "--params", "params.yaml"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"{STAGE_NAMES.get(stage, stage)}: params.yaml: missing section")


# --- 7. Leftovers ---------------------------------------------------------------------------


@pytest.mark.parametrize("stage", sorted(STAGE_ARGS))
def test_ctrl_c_in_every_stage_is_one_line_and_130(stage, tmp_path, monkeypatch, capsys):
    import genmodels.config
    import genmodels.images.registry

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    for module in (genmodels.config, genmodels.images.registry):  # every stage reads params
        monkeypatch.setattr(module, "read_params", interrupted)
    assert load_stage(stage).main([*STAGE_ARGS[stage], "--params", "params.yaml"]) == 130
    assert one_line(capsys.readouterr().err) == f"{STAGE_NAMES.get(stage, stage)}: interrupted"


def test_run_stage_keeps_the_traceback_of_a_bug():
    with pytest.raises(ZeroDivisionError):
        run_stage("x", lambda: 1 / 0)


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_the_next_download_removes_the_staging_folders_of_killed_runs(tmp_path):
    out = tmp_path / "raw"
    stale = [out / f".download-{dead_pid()}-abcd_123", out / ".download-k2j4h5g6"]  # new, old
    live = out / f".download-{os.getpid()}-zzzzzzzz"  # a download running now: kept
    for folder in (*stale, live):
        (folder / "fashion-mnist").mkdir(parents=True)
        (folder / "fashion-mnist" / "part").write_bytes(b"x" * 1000)
    download_all({}, out, None, timeout=1)  # nothing to fetch: only the cleanup happens
    assert [p.name for p in out.iterdir()] == [live.name]


def silent_server() -> socket.socket:
    """Accepts connections (the backlog) and never answers: a download that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server


def start_download(tmp_path: Path, server: socket.socket) -> subprocess.Popen:
    env = {**os.environ, "GENMODELS_MIRROR": f"http://127.0.0.1:{server.getsockname()[1]}",
           "PYTHONPATH": str(ROOT / "src"), "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen([sys.executable, str(ROOT / "stages" / "download.py"), "--out", "raw",
                             "--params", str(ROOT / "params.yaml")], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_staging(tmp_path: Path, proc: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((tmp_path / "raw").glob(".download-*"))
        if found:
            time.sleep(0.5)  # into the first (hanging) request
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no staging folder: {proc.communicate()}")


def test_ctrl_c_during_a_download_exits_130_and_cleans_up(tmp_path):
    with silent_server() as server:
        proc = start_download(tmp_path, server)
        staging = wait_for_staging(tmp_path, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "download: interrupted" and "Traceback" not in err
    assert not staging.exists()


def test_a_killed_download_leaves_a_folder_the_next_run_removes(tmp_path):
    with silent_server() as server:
        proc = start_download(tmp_path, server)
        staging = wait_for_staging(tmp_path, proc)
        proc.kill()  # SIGKILL: no cleanup can run
        proc.communicate(timeout=30)
    assert staging.exists()
    download_all({}, tmp_path / "raw", None, timeout=1)  # the next run
    assert list((tmp_path / "raw").iterdir()) == []


# --- 6. A split shorter than one window ------------------------------------------------------

@pytest.mark.parametrize("split, keep, counts", [
    ("train", 30, "the train split has 30 tokens, fewer than one training window: "
                  "batch_size 4 x (bptt 8 + 1) (36)"),
    ("val", 3, "the val split has 3 tokens, fewer than one validation window: "
               "eval_batch_size 2 x 2 (4)"),
])
def test_a_split_shorter_than_one_window_is_refused_before_training(corpus, tmp_path, split, keep,
                                                                     counts):
    path = corpus / f"{split}.pt"
    torch.save({"ids": torch.load(path)["ids"][:keep]}, path)
    cfg = TrainTextConfig(corpus="c", arch="transformer", model=TEXT_MODEL,
                          train=TrainSettings(**TEXT_TRAIN))
    with pytest.raises(ValueError) as err:
        train_text(cfg, corpus, tmp_path / "m.pt", stage="train_text@x")
    assert str(err.value) == f"corpus {corpus}: {counts}; use a longer corpus or smaller batches"
    assert not (tmp_path / "m.pt").exists()
