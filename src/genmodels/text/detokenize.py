"""Tokens back to readable text (the workshop's ``display``).

The inverse of :func:`genmodels.data.text.tokenize` up to case: punctuation
attaches to the word before it, an opening quote to the word after it, ``<nl>``
becomes a line break (``newline="line"``) or a blank line between paragraphs
(``"paragraph"``), and sentences, lines and the word "i" get a capital. With the
vocabulary's ``casing`` (``data.text.word_casing``) names get theirs back: "said Holmes".
``tokenize(detokenize(tokens, nl), nl) == tokens`` for tokens without ``<eos>``.

Quotes. A ``"`` inside an open quotation closes it. Otherwise it opens one, unless the
next token ends the line or is punctuation: then it closes a quotation opened on an
earlier line (a model may close a speech it began a paragraph ago; in the Sherlock
training text every one of the 5,282 ``"`` before a ``<nl>`` is a closing quote). That
needs one token of lookahead, so such a quote is held back until the next token, or
:meth:`Detokenizer.flush`. A lone ``'`` token is the closing single quote of a nested
speech ("'Yes,' said he": 99% of them follow punctuation in both corpora) and there
attaches to the left; the word after either closing quote keeps its own case ("said he").

:class:`Detokenizer` does the same one token at a time, for text printed as it is
generated: the pieces ``feed`` returns, then ``flush()``, joined are exactly
:func:`detokenize`'s string.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from genmodels.data.text import EOS, NL

_ATTACH_LEFT = {".", ",", "?", "!", ":", ";"}
_SENTENCE_END = {".", "?", "!"}
_CLOSES_QUOTE = {NL, EOS, '"', *_ATTACH_LEFT}  # the tokens after an unmatched '"' that close it
_BEFORE_SINGLE_CLOSE = {'"', *_ATTACH_LEFT}  # a lone "'" after these closes a nested quotation


class Detokenizer:
    """``feed(token) -> str``: the text one token adds; ``<eos>`` ends a story with a blank line.
    ``flush() -> str``: what is still held back at the end (a quote). ``casing`` maps a word
    to its display form ("holmes" -> "Holmes")."""

    def __init__(self, newline: str = "line", casing: Mapping[str, str] | None = None):
        if newline not in ("line", "paragraph"):
            raise ValueError(f"newline must be 'line' or 'paragraph', got {newline!r}")
        self.line_break = "\n" if newline == "line" else "\n\n"
        self.casing = casing or {}
        self.at_line_start, self.capital, self.quote_open, self.glue_next = True, True, False, False
        self.held_quote = False  # an unmatched '"' mid-line, waiting for the next token
        self.prev = NL

    def feed(self, tok: str) -> str:
        held = self._resolve(closing=tok in _CLOSES_QUOTE) if self.held_quote else ""
        text = self._feed(tok)
        self.prev = tok
        return held + text

    def flush(self) -> str:
        """The held-back quote, if any: at the end of the text a quote closes."""
        return self._resolve(closing=True) if self.held_quote else ""

    def _resolve(self, closing: bool) -> str:
        self.held_quote = False
        if closing:  # closes a quotation opened before this line: hugs the word before it
            self.capital = False
            return '"'
        self.quote_open, self.glue_next = True, True
        return ' "'

    def _feed(self, tok: str) -> str:
        if tok in (NL, EOS):
            self.at_line_start, self.capital, self.quote_open, self.glue_next = True, True, False, False
            return self.line_break if tok == NL else "\n\n"
        if tok == '"':
            if self.quote_open:  # a closing quote hugs the word before it; '"Come!" he cried'
                self.quote_open, self.capital, self.at_line_start = False, False, False
                return '"'
            if self.at_line_start or self.glue_next:  # opens: nothing else can start a line
                self.quote_open, self.glue_next, self.at_line_start = True, True, False
                return '"'
            self.held_quote = True  # opens or closes: the next token decides
            return ""
        if tok == "'" and self.prev in _BEFORE_SINGLE_CLOSE:  # closes a nested quotation:
            self.capital, self.at_line_start, self.glue_next = False, False, False  # "'Yes,' he"
            return tok  # (after a word it would join it, "holmes'": a token of its own then)
        word = self.casing.get(tok, tok)
        bare = word.lstrip("'")  # "'tis", "'i": a nested quotation's first word
        if self.capital or bare == "i" or bare.startswith("i'"):
            cut = len(word) - len(bare)
            word = word[:cut] + bare[:1].upper() + bare[1:]
        glued = tok in _ATTACH_LEFT or self.at_line_start or self.glue_next
        self.capital = tok in _SENTENCE_END or (self.capital and tok in _ATTACH_LEFT)
        self.at_line_start, self.glue_next = False, False
        return word if glued else " " + word


def detokenize(tokens: Iterable[str], newline: str = "line",
               casing: Mapping[str, str] | None = None) -> str:
    """Join ``tokens`` into text; ``<eos>`` ends a story with a blank line."""
    d = Detokenizer(newline, casing)
    return "".join(d.feed(tok) for tok in tokens) + d.flush()
