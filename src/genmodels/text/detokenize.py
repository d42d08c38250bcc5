"""Tokens back to readable text (the workshop's ``display``).

The inverse of :func:`genmodels.data.text.tokenize` up to case: punctuation
attaches to the word before it, an opening quote to the word after it, ``<nl>``
becomes a line break (``newline="line"``) or a blank line between paragraphs
(``"paragraph"``), and sentences, lines and the word "i" get a capital.
``tokenize(detokenize(tokens, nl), nl) == tokens`` for tokens without ``<eos>``.
"""

from __future__ import annotations

from collections.abc import Iterable

from genmodels.data.text import EOS, NL

_ATTACH_LEFT = {".", ",", "?", "!", ":", ";"}
_SENTENCE_END = {".", "?", "!"}


def detokenize(tokens: Iterable[str], newline: str = "line") -> str:
    """Join ``tokens`` into text; ``<eos>`` ends a story with a blank line."""
    if newline not in ("line", "paragraph"):
        raise ValueError(f"newline must be 'line' or 'paragraph', got {newline!r}")
    line_break = "\n" if newline == "line" else "\n\n"
    out: list[str] = []
    at_line_start, capital, quote_open, glue_next = True, True, False, False
    for tok in tokens:
        if tok in (NL, EOS):
            out.append(line_break if tok == NL else "\n\n")
            at_line_start, capital, quote_open, glue_next = True, True, False, False
            continue
        word = tok
        if tok == '"':
            space = not (at_line_start or glue_next) and not quote_open
            if quote_open:  # a closing quote hugs the word before it; '"Come!" he cried'
                out.append('"')
                capital = False
            else:
                out.append((" " if space else "") + '"')
                glue_next = True
            quote_open = not quote_open
            at_line_start = False
            continue
        if capital or word == "i" or word.startswith("i'"):
            word = word[:1].upper() + word[1:]
        if tok in _ATTACH_LEFT or at_line_start or glue_next:
            out.append(word)
        else:
            out.append(" " + word)
        capital = tok in _SENTENCE_END or (capital and tok in _ATTACH_LEFT)
        at_line_start, glue_next = False, False
    return "".join(out)
