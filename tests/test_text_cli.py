"""`genmodels generate`: one prompt, the interactive loop until EOF, clear errors."""

import io

import pytest
import torch

from genmodels.cli import main
from genmodels.text.registry import build_model, save_checkpoint

VOCAB = ["<unk>", "<nl>", "<eos>", "sherlock", "woke", "up", "and", "saw", "watson", ".", ","]


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    cfg, model = build_model("rnn", {"cell": "lstm", "n_embd": 8, "n_hidden": 8}, VOCAB)
    path = tmp_path / "lstm_sherlock.pt"
    save_checkpoint(path, model, cfg, "rnn", VOCAB, newline="paragraph",
                    casing={"sherlock": "Sherlock", "watson": "Watson"})
    return path


def test_one_prompt_is_deterministic_for_a_seed(checkpoint, capsys):
    args = ["generate", "--checkpoint", str(checkpoint), "--prompt", "Sherlock woke up and saw",
            "--words", "20", "--temperature", "0.5", "--seed", "0"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("Sherlock woke up and saw")
    assert "Watson" in first and "watson" not in first  # names keep their capitals
    main(args)
    assert capsys.readouterr().out == first


def test_interactive_reads_prompts_until_eof(checkpoint, capsys, monkeypatch, caplog):
    monkeypatch.setattr("sys.stdin", io.StringIO("watson saw\n\nholmes woke\n"))
    assert main(["generate", "--checkpoint", str(checkpoint), "-i", "--words", "5",
                 "--temperature", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n\n") >= 3 and out.startswith("Watson saw")
    assert "holmes" in caplog.text  # the unknown prompt word is named in a warning


@pytest.mark.parametrize("bad", [["--temperature", "-1"], ["--temperature", "nan"], ["--top-p", "0"]])
def test_bad_settings_are_one_line_errors(checkpoint, capsys, bad):
    assert main(["generate", "--checkpoint", str(checkpoint), *bad]) == 2
    assert capsys.readouterr().err.startswith("genmodels: error:")


def test_missing_checkpoint_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="dvc repro"):
        main(["generate", "--model", "lstm", "--corpus", "sherlock"])
