"""The benchmark runs on tiny models and writes its figures (no speed is asserted)."""

import json

import torch
import yaml
from torch import nn

from genmodels.bench import main, recurrent_flops


def test_recurrent_flops_counts_the_fused_lstm():
    lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
    x = torch.randn(3, 5, 8)
    flops = recurrent_flops(lstm, lambda: lstm(x))
    per_token = 4 * 2 * 16 * (8 + 16) + 4 * 2 * 16 * (16 + 16)  # two layers, forward
    assert flops == 3 * 3 * 5 * per_token


def test_bench_writes_json_and_table(tmp_path):
    params = {
        "train_image": {"tiny": {"family": "vae", "latent_dim": 2, "channels": [4, 8],
                                 "hidden_dim": 8, "epochs": 1, "batch_size": 8, "lr": 1e-3,
                                 "seed": 0}},
        "train_text": {"tiny_lstm": {"corpus": "toy", "arch": "rnn",
                                     "model": {"cell": "lstm", "n_embd": 8, "n_hidden": 8},
                                     "train": {"batch_size": 2, "bptt": 5}}},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "prepared" / "toy").mkdir(parents=True)
    (tmp_path / "prepared" / "toy" / "vocab.json").write_text(
        json.dumps({"itos": ["<unk>", "<nl>", "<eos>", "a", "b"]}))
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    assert main(["--params", str(tmp_path / "params.yaml"), "--prepared", str(tmp_path / "prepared"),
                 "--out", str(out), "--table", str(md), "--seconds", "0.05",
                 "--gen-tokens", "20"]) == 0
    results = json.loads(out.read_text())
    assert results["matmul_peak_gflops"] > 0
    image, text = results["image"]["tiny"], results["text"]["tiny_lstm"]
    assert image["train_images_per_s"] > 0 and image["gflop_per_step"] > 0
    assert text["train_tokens_per_s"] > 0 and text["generate_tokens_per_s"] > 0
    assert 0 < text["share_of_peak"]
    assert "`tiny_lstm`" in md.read_text()


def test_missing_vocabulary_is_a_clear_error(tmp_path, capsys):
    params = {"train_text": {"x": {"corpus": "nowhere", "arch": "rnn", "model": {},
                                   "train": {}}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = main(["--params", str(tmp_path / "params.yaml"), "--prepared", str(tmp_path),
                 "--out", str(tmp_path / "b.json"), "--table", str(tmp_path / "b.md"),
                 "--seconds", "0.01"])
    assert code == 1 and "prepare_text" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()
