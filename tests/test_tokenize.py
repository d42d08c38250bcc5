import random

import pytest

from genmodels.data.text import EOS, NL, UNK, Vocab, oov_rate, tokenize, word_casing


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("Hello, World!", ["hello", ",", "world", "!"]),
        ('He said: "No; never?"', ["he", "said", ":", '"', "no", ";", "never", "?", '"']),
        ("well--then", ["well", "then"]),
        ("twenty-one - two", ["twenty", "one", "two"]),
        ("don't stop", ["don't", "stop"]),
        ("First Citizen:\nSpeak.\n", ["first", "citizen", ":", NL, "speak", ".", NL]),
        ("", []),
        ("   \n\t ", [NL]),
    ],
)
def test_tokenize_line_mode(text, tokens):
    assert tokenize(text) == tokens


def test_paragraph_mode_unwraps_hard_wrapped_prose():
    text = "     It was a cold\n     morning.\n\n\n     Holmes woke.\n"
    assert tokenize(text, "paragraph") == ["it", "was", "a", "cold", "morning", ".", NL,
                                           "holmes", "woke", "."]


def test_tokenize_never_makes_empty_tokens():
    rng = random.Random(0)
    alphabet = "ab .,?!:;\"-\n\t'"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        for mode in ("line", "paragraph"):
            tokens = tokenize(text, mode)
            assert all(t and not t.isspace() and " " not in t for t in tokens), (text, tokens)


def test_unknown_newline_mode_is_an_error():
    with pytest.raises(ValueError, match="newline"):
        tokenize("x", "sentence")


def test_vocab_from_training_tokens_with_min_freq_and_unk():
    vocab = Vocab.build(["b", "a", "b", "c", "c", "c", NL], min_freq=2)
    assert vocab.itos == (UNK, NL, EOS, "c", "b")  # specials first, then by frequency
    assert vocab.encode(["c", "a", "zebra"]) == [3, 0, 0]  # rare and unseen words -> <unk>
    assert vocab.decode([3, 4]) == ["c", "b"]
    assert vocab.unknown(["a", "c", "a", "q"]) == ["a", "q"]
    assert oov_rate(["a", "b", "c", "q"], vocab) == 0.5


def test_vocab_round_trips_through_json(tmp_path):
    vocab = Vocab("<unk> to be or not".split(), casing={"not": "Not"})
    vocab.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json") == vocab


def test_cased_tokens_match_the_lowercase_ones_one_for_one():
    text = "KING RICHARD III:\nSay, Holmes -- is't so? \"Aye.\""
    assert [t.lower() for t in tokenize(text, lower=False)] == tokenize(text)


VERSE = """KING RICHARD III:
Say, Holmes, where is Watson? Watson went to London
with Holmes and the king. The king is here.
Holmes. Watson.

First Citizen:
The citizen and the other citizen, and the king.
"""


def test_word_casing_reads_the_case_writers_choose():
    cased = tokenize(VERSE, lower=False)
    vocab = Vocab.build(tokenize(VERSE))
    assert word_casing(cased, vocab) == {
        "holmes": "Holmes", "watson": "Watson", "london": "London",  # names, mid-sentence
        "richard": "Richard", "iii": "III",  # only in a heading in capitals: title form, numeral
    }  # not "king" (lowercase mid-sentence; its heading does not count), "citizen" (1 of 3),
    # nor "say", "first", "the" (capitalised only where every word is)
    assert word_casing(cased, Vocab.build(["holmes"])) == {"holmes": "Holmes"}  # vocabulary only


def test_vocab_rejects_a_list_without_unk_first():
    with pytest.raises(ValueError, match="<unk>"):
        Vocab(("a", UNK))
