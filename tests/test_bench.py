"""The benchmark runs on tiny models and writes its figures (no speed is asserted);
its FLOP counts agree with the formulas."""

import json

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from genmodels.bench import count_flops, main, matmul_rates


def test_fused_lstm_is_counted_from_its_shapes():
    lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)  # oneDNN's kernel: invisible to the counter
    x = torch.randn(3, 5, 8)
    per_token = 4 * 2 * 16 * (8 + 16) + 4 * 2 * 16 * (16 + 16)  # two layers, forward
    assert count_flops(lstm, lambda: lstm(x)) == 3 * 3 * 5 * per_token


def test_rnn_run_as_matmuls_is_not_counted_twice():
    rnn = nn.RNN(8, 16, batch_first=True)  # the CPU runs it as addmm/mm, which the counter sees
    x = torch.randn(3, 5, 8)
    assert count_flops(rnn, lambda: rnn(x)) == 3 * 5 * 2 * 16 * (8 + 16)  # forward only


def test_conv_and_transposed_conv_counts():
    conv, deconv = nn.Conv2d(4, 6, 3, 2, 1), nn.ConvTranspose2d(6, 4, 3, 2, 1, 1)
    x = torch.randn(2, 4, 8, 8)
    per = 2 * 2 * (6 * 4 * 4) * (4 * 3 * 3)  # 2 x outputs x (C_in x k x k) multiply-adds
    assert count_flops(conv, lambda: conv(x)) == per
    assert count_flops(deconv, lambda: deconv(torch.randn(2, 6, 4, 4))) == per  # its mirror


def test_attention_counted_with_and_without_dropout():
    q, k, v = (torch.randn(2, 3, n, 4, requires_grad=True) for n in (5, 9, 9))
    mask = torch.ones(5, 9, dtype=torch.bool).tril(4)
    forward = 2 * 2 * (2 * 3 * 5 * 9 * 4)  # q k^T and att v: 2 x multiply-adds each
    for p in (0.0, 0.5):  # 0: the CPU flash kernel; > 0: the math path
        n = count_flops(nn.Module(), lambda p=p: F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=p).sum().backward())
        assert n == 3 * forward


def test_matmul_rates_cover_each_library_and_size():
    rates = matmul_rates(torch.device("cpu"), sizes=(64, 128), seconds=0.02)
    assert "torch.mm" in rates and all(set(r) == {"64", "128"} for r in rates.values())
    assert all(v > 0 for r in rates.values() for v in r.values())


def tiny_project(tmp_path):
    params = {
        "train_image": {"tiny": {"family": "vae", "latent_dim": 2, "channels": [4, 8],
                                 "hidden_dim": 8, "epochs": 1, "batch_size": 8, "lr": 1e-3,
                                 "seed": 0}},
        "train_classifier": {"channels": [4], "feature_dim": 8, "dropout": 0.1, "epochs": 1,
                             "batch_size": 8, "lr": 1e-3, "seed": 0},
        "train_text": {"tiny_lstm": {"corpus": "toy", "arch": "rnn",
                                     "model": {"cell": "lstm", "n_embd": 8, "n_hidden": 8,
                                               "cutoffs": [3]},
                                     "train": {"batch_size": 2, "bptt": 5}}},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    toy = tmp_path / "prepared" / "toy"
    toy.mkdir(parents=True)
    (toy / "vocab.json").write_text(json.dumps({"itos": ["<unk>", "<nl>", "<eos>", "a", "b"]}))
    torch.save({"ids": torch.randint(5, (400,))}, toy / "train.pt")
    return tmp_path


def test_bench_writes_json_and_table(tmp_path, one_thread):
    project = tiny_project(tmp_path)
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    assert main(["--params", str(project / "params.yaml"), "--prepared", str(project / "prepared"),
                 "--out", str(out), "--table", str(md), "--seconds", "0.05",
                 "--gen-tokens", "20", "--profile", "3", "--peak-sizes", "64", "128",
                 "--threads", "1", "--clock", "thread"]) == 0
    results = json.loads(out.read_text())
    assert results["matmul_peak_gflops"] == max(
        v for r in results["matmul_gflops"].values() for v in r.values())
    image, text = results["image"]["tiny"], results["text"]["tiny_lstm"]
    assert image["train_images_per_s"] > 0 and image["gflop_per_step"] > 0
    assert text["train_tokens_per_s"] > 0 and text["generate_tokens_per_s"] > 0
    assert 0 < text["share_of_peak"] and text["peak_rss_mib"] > 0
    assert len(text["top_ops"]) == 3 and text["top_ops"][0]["ms_per_step"] > 0
    assert results["image"]["classifier"]["features_images_per_s"] > 0
    assert results["clock"] == "thread" and results["threads"] == 1
    assert "`tiny_lstm`" in md.read_text() and "`classifier`" in md.read_text()


def test_thread_clock_needs_one_thread(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--params", str(tmp_path / "none.yaml"), "--threads", "2", "--clock", "thread"])
    assert "--threads 1" in capsys.readouterr().err


def test_missing_vocabulary_is_a_clear_error(tmp_path, capsys):
    params = {"train_text": {"x": {"corpus": "nowhere", "arch": "rnn", "model": {},
                                   "train": {}}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = main(["--params", str(tmp_path / "params.yaml"), "--prepared", str(tmp_path),
                 "--out", str(tmp_path / "b.json"), "--table", str(tmp_path / "b.md"),
                 "--seconds", "0.01"])
    assert code == 1 and "prepare_text" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()


def test_missing_training_split_is_a_clear_error(tmp_path, capsys):
    project = tiny_project(tmp_path)
    (project / "prepared" / "toy" / "train.pt").unlink()
    code = main(["--params", str(project / "params.yaml"), "--prepared", str(project / "prepared"),
                 "--out", str(tmp_path / "b.json"), "--table", str(tmp_path / "b.md"),
                 "--seconds", "0.01", "--only", "tiny_lstm"])
    assert code == 1 and "train.pt" in capsys.readouterr().err
