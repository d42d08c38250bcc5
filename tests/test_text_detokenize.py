"""The detokenizer undoes the tokenizer (up to case) and reads naturally."""

import pytest

from genmodels.data.text import tokenize
from genmodels.text.detokenize import detokenize


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
