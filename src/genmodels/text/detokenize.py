"""Tokens back to readable text (the workshop's ``display``).

The inverse of :func:`genmodels.data.text.tokenize` up to case: punctuation
attaches to the word before it, an opening quote to the word after it, ``<nl>``
becomes a line break (``newline="line"``) or a blank line between paragraphs
(``"paragraph"``), and sentences, lines and the word "i" get a capital. With the
vocabulary's ``casing`` (``data.text.word_casing``) names get theirs back: "said Holmes".
``tokenize(detokenize(tokens, nl), nl) == tokens`` for tokens without ``<eos>``.

:class:`Detokenizer` does the same one token at a time, for text printed as it is
generated: each token's text (with the space before it) depends only on the tokens
before it, so the pieces joined are exactly :func:`detokenize`'s string.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from genmodels.data.text import EOS, NL

_ATTACH_LEFT = {".", ",", "?", "!", ":", ";"}
_SENTENCE_END = {".", "?", "!"}


class Detokenizer:
    """``feed(token) -> str``: the text one token adds; ``<eos>`` ends a story with a blank line.
    ``casing`` maps a word to its display form ("holmes" -> "Holmes")."""

    def __init__(self, newline: str = "line", casing: Mapping[str, str] | None = None):
        if newline not in ("line", "paragraph"):
            raise ValueError(f"newline must be 'line' or 'paragraph', got {newline!r}")
        self.line_break = "\n" if newline == "line" else "\n\n"
        self.casing = casing or {}
        self.at_line_start, self.capital, self.quote_open, self.glue_next = True, True, False, False

    def feed(self, tok: str) -> str:
        if tok in (NL, EOS):
            self.at_line_start, self.capital, self.quote_open, self.glue_next = True, True, False, False
            return self.line_break if tok == NL else "\n\n"
        if tok == '"':
            space = not (self.at_line_start or self.glue_next) and not self.quote_open
            if self.quote_open:  # a closing quote hugs the word before it; '"Come!" he cried'
                text = '"'
                self.capital = False
            else:
                text = (" " if space else "") + '"'
                self.glue_next = True
            self.quote_open = not self.quote_open
            self.at_line_start = False
            return text
        word = self.casing.get(tok, tok)
        if self.capital or word == "i" or word.startswith("i'"):
            word = word[:1].upper() + word[1:]
        glued = tok in _ATTACH_LEFT or self.at_line_start or self.glue_next
        self.capital = tok in _SENTENCE_END or (self.capital and tok in _ATTACH_LEFT)
        self.at_line_start, self.glue_next = False, False
        return word if glued else " " + word


def detokenize(tokens: Iterable[str], newline: str = "line",
               casing: Mapping[str, str] | None = None) -> str:
    """Join ``tokens`` into text; ``<eos>`` ends a story with a blank line."""
    d = Detokenizer(newline, casing)
    return "".join(d.feed(tok) for tok in tokens)
