import pytest
import torch

from genmodels.config import from_dict
from genmodels.data.text import (
    EOS,
    NL,
    PrepareTextConfig,
    Vocab,
    load_ids,
    prepare_corpus,
    save_corpus,
    split_blocks,
    split_documents,
)


def cfg(**overrides):
    values = {"split": "blocks", "val_fraction": 0.2, "test_fraction": 0.2, "newline": "line"}
    return from_dict(PrepareTextConfig, {**values, **overrides}, "prepare_text.toy")


def test_blocks_are_contiguous_disjoint_and_cut_at_line_breaks():
    tokens = [t for i in range(50) for t in (f"w{i}", "x", NL)]
    parts = split_blocks(tokens, 0.1, 0.2)
    assert parts["train"] + parts["val"] + parts["test"] == tokens  # in order, nothing lost
    assert parts["train"][-1] == NL and parts["val"][-1] == NL
    assert len(parts["test"]) == pytest.approx(0.2 * len(tokens), abs=3)


def test_documents_are_split_whole_and_seeded():
    names = [f"doc{i:02d}" for i in range(20)]
    a = split_documents(names, 0.1, 0.1, seed=0)
    assert sorted(a["train"] + a["val"] + a["test"]) == names
    assert len(a["val"]) == 2 and len(a["test"]) == 2
    assert a == split_documents(list(reversed(names)), 0.1, 0.1, seed=0)  # order-independent
    assert a != split_documents(names, 0.1, 0.1, seed=1)
    with pytest.raises(ValueError, match="too few"):
        split_documents(["a", "b"], 0.4, 0.4, seed=0)


def test_vocabulary_comes_from_training_text_only():
    docs = {f"d{i}": f"common words here {i}" for i in range(10)}
    docs["d9"] = "common zebra"  # a word seen only in one held-out story
    ids, vocab, meta = prepare_corpus(
        docs, cfg(split="documents", val_fraction=0.1, test_fraction=0.1, seed=3)
    )
    held_out = {d for s in ("val", "test") for d in meta["documents"][s]}
    train_words = {w for d in meta["documents"]["train"] for w in docs[d].split()}
    assert set(vocab.itos) - {"<unk>", NL, EOS} == train_words
    assert not held_out & set(meta["documents"]["train"])
    assert meta["tokens"] == {s: int(ids[s].numel()) for s in ("train", "val", "test")}
    # every story ends with <eos>
    for split in ("train", "val", "test"):
        assert vocab.itos[ids[split][-1]] == EOS
    if "d9" in held_out:
        split = "val" if "d9" in meta["documents"]["val"] else "test"
        assert meta["oov_rate"][split] > 0


def test_prepared_corpus_round_trips(tmp_path):
    ids, vocab, meta = prepare_corpus({"play": "to be\nor not\nto be\n" * 20}, cfg())
    save_corpus(ids, vocab, meta, tmp_path / "out")
    for split in ("train", "val", "test"):
        loaded = load_ids(tmp_path / "out", split)
        assert loaded.dtype == torch.int64 and torch.equal(loaded, ids[split])
    assert Vocab.load(tmp_path / "out" / "vocab.json") == vocab
