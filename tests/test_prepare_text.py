import runpy

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
    read_documents,
    save_corpus,
    split_blocks,
    split_documents,
    strip_boilerplate,
    tokenize,
)

# Shaped like the Sherlock files: centred title and byline, hard-wrapped prose, licence footer.
STORY = """



                        THE ADVENTURE OF THE TEST

                               Arthur Conan Doyle



     It was a dark night. Holmes
     smiled.




     ----------
     This text is provided to you "as-is" without any warranty.

     See http://sherlock-holm.es for more.



"""


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


def test_licence_footer_and_byline_are_stripped_and_counted():
    kept, removed = strip_boilerplate(STORY)
    assert tokenize(kept, "paragraph") == [
        "the", "adventure", "of", "the", "test", NL, "it", "was", "a", "dark", "night", ".",
        "holmes", "smiled", "."]
    assert "Arthur Conan Doyle" in removed and removed.lstrip().startswith("Arthur")
    assert "without any warranty" in removed and "sherlock-holm.es" in removed
    docs = {f"s{i}": STORY for i in range(5)}
    _, _, meta = prepare_corpus(docs, cfg(split="documents", newline="paragraph"))
    # per story: "arthur conan doyle <nl>" (4) and "<nl> this text ... warranty . <nl>
    # see http : //sherlock holm . es for more ." (1 + 14 + 1 + 10)
    assert meta["boilerplate_tokens"] == 5 * 30
    assert meta["boilerplate_tokens_by_split"] == {"train": 3 * 30, "val": 30, "test": 30}


def test_text_without_boilerplate_is_left_alone():
    verse = "A\n-----\nnot a licence\n" + "line\n" * 20 + "Arthur Conan Doyle\n"  # too late
    for text in (verse, "to be\r\nor not\r\n", ""):
        kept, removed = strip_boilerplate(text)
        assert kept == text and removed == ""
    _, _, meta = prepare_corpus({"play": verse * 5}, cfg())
    assert meta["boilerplate_tokens"] == 0 and "boilerplate_tokens_by_split" not in meta


def test_project_gutenberg_header_and_footer_are_stripped():
    text = ("The Project Gutenberg eBook of X\nLicence words\n"
            "*** START OF THE PROJECT GUTENBERG EBOOK X ***\nthe play\nbegins\n"
            "*** END OF THE PROJECT GUTENBERG EBOOK X ***\nmore licence\n")
    kept, removed = strip_boilerplate(text)
    assert kept == "the play\nbegins\n"
    assert removed.count("\n") == 5
    no_start = "words\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nlicence\n"
    assert strip_boilerplate(no_start)[0] == "words\n"


def test_real_sherlock_splits_hold_no_licence_text(mirror):
    raw = mirror / "sherlock"
    if not raw.is_dir():
        pytest.skip(f"no {raw}")
    documents = read_documents(raw)
    ids, vocab, meta = prepare_corpus(documents, cfg(
        split="documents", val_fraction=0.1, test_fraction=0.1, newline="paragraph", min_freq=2))
    phrases = ["this text is provided to you", "additional information about it",
               "this text comes from the collection"]
    for phrase in phrases:  # common words, so the phrase survives encoding if it is there
        assert "<unk>" not in vocab.decode(vocab.encode(phrase.split())), phrase
    for split, tensor in ids.items():
        text = " ".join(vocab.decode(tensor.tolist()))
        for phrase in phrases:
            assert phrase not in text, (split, phrase)
    for name, text in documents.items():
        kept, _ = strip_boilerplate(text)
        for needle in ("without any warranty", "sherlock-holm.es", "Arthur Conan Doyle"):
            assert needle not in kept, (name, needle)
    assert meta["boilerplate_tokens"] > 50 * len(documents)  # the footer alone is ~80 words


@pytest.mark.parametrize("docs, message", [
    ({"play": ""}, "toy: no words in its 1 document"),
    ({"play": "a few words on one line"}, r"toy: the val split has 0 tokens \(train 7, test 0\); "
                                          "need at least 2"),
])
def test_too_short_corpus_is_refused(docs, message):
    with pytest.raises(ValueError, match=message):
        prepare_corpus(docs, cfg(), name="toy")


def test_a_split_may_be_empty_when_its_fraction_is_zero():
    _, _, meta = prepare_corpus({"play": "to be\nor not\n" * 10}, cfg(val_fraction=0))
    assert meta["tokens"]["val"] == 0 and meta["tokens"]["test"] > 0


def test_non_utf8_file_is_refused_with_its_offset(tmp_path, monkeypatch, capsys):
    from conftest import ROOT

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.txt").write_text("fine\n")
    (tmp_path / "raw" / "b.txt").write_bytes("café\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"b\.txt is not UTF-8: byte 3 is 0xe9$"):
        read_documents(tmp_path / "raw")
    params = tmp_path / "params.yaml"
    params.write_text("prepare_text:\n  toy: {split: blocks, val_fraction: 0.1, "
                      "test_fraction: 0.1, newline: line}\n")
    monkeypatch.setattr("sys.argv", [
        "prepare_text", "--corpus", "toy", "--raw", str(tmp_path / "raw"), "--out",
        str(tmp_path / "out"), "--metrics", str(tmp_path / "m.json"), "--params", str(params)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "stages" / "prepare_text.py"), run_name="__main__")
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.count("\n") == 1
    assert err.startswith("prepare_text@toy: ") and "b.txt is not UTF-8: byte 3" in err
