"""The detokenizer undoes the tokenizer (up to case) and reads naturally."""

import pytest

from genmodels.data.text import tokenize
from genmodels.text.detokenize import Detokenizer, detokenize


@pytest.mark.parametrize("newline", ["line", "paragraph"])
@pytest.mark.parametrize("text", [
    "First Citizen:\nBefore we proceed any further, hear me speak.\n",
    '"Come, Watson, come!" he cried. "The game is afoot."',
    "I know not; what say you? Speak: quickly!",
    'He said "no" and left.\n\n"Well," said Holmes, "what then?"',
    "a <unk> word, don't stop",
])
def test_round_trip(text, newline):
    tokens = tokenize(text, newline)
    assert tokenize(detokenize(tokens, newline), newline) == tokens


def test_readable_output():
    tokens = tokenize('"come, watson, come!" he cried.\nthe game is afoot.', "line")
    assert detokenize(tokens, "line") == '"Come, watson, come!" he cried.\nThe game is afoot.'
    assert detokenize(["i", "think", ".", "<nl>", "<nl>", "so"], "paragraph") == "I think.\n\n\n\nSo"


def test_bad_newline_mode():
    with pytest.raises(ValueError):
        detokenize(["a"], "verse")


def test_casing_gives_names_their_capitals():
    tokens = tokenize('"my dear watson," said holmes. holmes smiled; i nodded.', "line")
    casing = {"watson": "Watson", "holmes": "Holmes", "i": "I"}
    assert detokenize(tokens, "line", casing) == '"My dear Watson," said Holmes. Holmes smiled; I nodded.'
    assert tokenize(detokenize(tokens, "line", casing), "line") == tokens  # still a round trip


def test_quote_closing_a_speech_from_an_earlier_line_hugs_its_word():
    # A model may close a quotation it opened a paragraph ago; the old detokenizer read
    # that quote as an opening one: 'saw the door of the room. "' at the end of a line.
    tokens = ["i", "saw", "the", "door", ".", '"', "<nl>", "he", "left", ".", '"']
    assert detokenize(tokens, "paragraph") == 'I saw the door."\n\nHe left."'
    mid = ["so", "he", "said", ".", '"', "come", "here", ".", '"', "and", "left"]
    assert detokenize(mid, "line") == 'So he said. "Come here." and left'  # opens mid-line


def test_nested_single_quotes_close_on_the_left():
    text = '"She said to me, \'yes,\' and then, \'i know.\'"\n\nHe nodded.'
    tokens = tokenize(text, "paragraph")
    assert "'" in tokens  # the lone closing single quote is a token of its own
    assert detokenize(tokens, "paragraph") == (
        '"She said to me, \'yes,\' and then, \'I know.\'"\n\nHe nodded.')


def test_streaming_pieces_join_to_the_whole_string():
    import random

    rng = random.Random(0)
    pool = ["a", "i", "holmes", ".", ",", "?", '"', "'", "<nl>", "<eos>", "'tis"]
    for _ in range(200):
        tokens = [rng.choice(pool) for _ in range(rng.randint(0, 12))]
        d = Detokenizer("paragraph")
        assert "".join(d.feed(t) for t in tokens) + d.flush() == detokenize(tokens, "paragraph")
        if "<eos>" not in tokens:
            assert tokenize(detokenize(tokens, "line"), "line") == tokens
