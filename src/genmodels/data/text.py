"""Word-level tokenization, vocabulary and held-out splits for the text corpora.

Tokenization follows the workshop: lowercase; ``. , ? ! : ; "`` are tokens of
their own; ``--`` and ``-`` become spaces; line breaks become ``<nl>`` so
generated text keeps its line structure; a story ends with ``<eos>``. What the
lowercasing loses for a reader, the capital of a name ("said Holmes"), comes back
at display time from the vocabulary's ``casing`` (``word_casing``).

Before tokenizing, ``strip_boilerplate`` drops text that is not the author's
(licence footers, bylines, Project Gutenberg headers). Held-out text never
overlaps the training text: a single-file corpus is cut into contiguous blocks
(train | val | test, in reading order, cut at line breaks); a corpus of
documents is split by whole documents.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import Field

from genmodels.config import config
from genmodels.io import atomic_dir, torch_save, write_json

UNK = "<unk>"
NL = "<nl>"
EOS = "<eos>"
SPECIALS = (UNK, NL, EOS)

Newline = Literal["line", "paragraph"]

PUNCTUATION = frozenset('.,?!:;"')  # each is a token of its own
_PUNCT = re.compile(r'([.,?!:;"])')
_DASHES = re.compile(r"-+")
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")  # one or more blank lines


def tokenize(text: str, newline: Newline = "line", lower: bool = True) -> list[str]:
    """Split ``text`` into word tokens.

    ``newline="line"``: every line break is a ``<nl>`` (verse). ``"paragraph"``:
    hard-wrapped prose, where a blank line ends a paragraph (one ``<nl>``) and a
    single line break is only a space. ``lower=False`` keeps the case: the same tokens,
    one for one, as written (``word_casing`` reads them).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.lower() if lower else text
    if newline == "paragraph":
        text = _PARAGRAPH.sub(f" {NL} ", text.strip())
        text = text.replace("\n", " ")
    elif newline == "line":
        text = text.replace("\n", f" {NL} ")
    else:
        raise ValueError(f"newline must be 'line' or 'paragraph', got {newline!r}")
    text = _DASHES.sub(" ", text)
    text = _PUNCT.sub(r" \1 ", text)
    return text.split()  # split() on runs of whitespace: never an empty token


class Vocab:
    """Token <-> id. Id 0 is ``<unk>``; the specials come first, then words by frequency.
    ``casing`` maps a word to the form a reader expects it in ("holmes" -> "Holmes"), for
    display only (``word_casing``)."""

    def __init__(self, itos: Sequence[str], casing: dict[str, str] | None = None):
        self.itos = tuple(itos)
        self.casing = dict(casing or {})
        if not self.itos or self.itos[0] != UNK:
            raise ValueError(f"a vocabulary starts with {UNK}")
        if len(set(self.itos)) != len(self.itos):
            raise ValueError("a vocabulary has no duplicate tokens")
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and (self.itos, self.casing) == (other.itos, other.casing)

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def unk_id(self) -> int:
        return 0

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.stoi.get(t, 0) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        """The tokens this vocabulary does not hold, in order, without repeats."""
        return list(dict.fromkeys(t for t in tokens if t not in self.stoi))

    @classmethod
    def build(cls, tokens: Iterable[str], min_freq: int = 1) -> Vocab:
        """Words seen at least ``min_freq`` times, most frequent first (ties alphabetical)."""
        counts = Counter(t for t in tokens if t not in SPECIALS)
        words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        return cls(tuple([*SPECIALS, *words]))

    def save(self, path: str | Path) -> None:
        write_json(path, {"itos": list(self.itos), "casing": self.casing})

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        saved = json.loads(Path(path).read_text())
        return cls(tuple(saved["itos"]), saved.get("casing"))


# Tokens after which the next word is capitalised whatever it is: not evidence of its case.
_OPENERS = frozenset({NL, EOS, ".", "?", "!", ":", '"'})
_ROMAN = re.compile(r"[IVXL]{2,}")  # "KING RICHARD III": kept in capitals


def word_casing(cased: Sequence[str], vocab: Vocab) -> dict[str, str]:
    """The display form of each vocabulary word that is written capitalised more often than
    not where case is the writer's choice: not at the start of a line or a sentence, not in
    a line all in capitals. ``cased`` is ``tokenize(text, lower=False)``.

    Why: the models see lowercase words, and their samples read "said holmes" and "my dear
    watson". The detokenizer already capitalises sentences and lines; this restores names.
    Words seen only in capitalised lines (Shakespeare's speaker headings, "KING RICHARD
    III:") take their title form, roman numerals their capitals. Only words whose form
    differs from the lowercase one are returned."""
    forms: dict[str, Counter] = defaultdict(Counter)
    shouted: dict[str, Counter] = defaultdict(Counter)
    line: list[str] = []

    def flush() -> None:
        text = "".join(line)
        loud = sum(c.isalpha() for c in text) > 1 and not any(c.islower() for c in text)
        for i, t in enumerate(line):
            w = t.lower()
            if w not in vocab.stoi or not t[0].isalpha():  # "'Tis" opens a quote: its capital is the quote's
                continue
            if loud:
                shouted[w][t if _ROMAN.fullmatch(t) else t.capitalize()] += 1
            elif i > 0 and line[i - 1] not in _OPENERS:
                forms[w][t] += 1

    for t in cased:
        if t in (NL, EOS):
            flush()
            line = []
        else:
            line.append(t)
    flush()
    out = {}
    for w in sorted(forms.keys() | shouted.keys()):
        seen = forms.get(w) or shouted[w]
        form, n = seen.most_common(1)[0]
        if form != w and n * 2 > seen.total():
            out[w] = form
    return out


def split_blocks(
    tokens: Sequence[str], val_fraction: float, test_fraction: float
) -> dict[str, list[str]]:
    """Contiguous train | val | test blocks, each cut just after a ``<nl>`` where one exists."""
    n = len(tokens)

    def cut(position: float) -> int:
        i = int(round(position))
        while 0 < i < n and tokens[i - 1] != NL:
            i += 1
        return i

    a = cut(n * (1 - val_fraction - test_fraction))
    b = cut(n * (1 - test_fraction))
    return {"train": list(tokens[:a]), "val": list(tokens[a:b]), "test": list(tokens[b:])}


def split_documents(
    names: Sequence[str], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Assign whole documents to splits: a seeded shuffle, at least one per held-out split."""
    order = sorted(names)
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(order) * val_fraction)) if val_fraction > 0 else 0
    n_test = max(1, round(len(order) * test_fraction)) if test_fraction > 0 else 0
    if n_val + n_test >= len(order):
        raise ValueError(f"{len(order)} documents are too few for the val and test fractions")
    return {
        "test": sorted(order[:n_test]),
        "val": sorted(order[n_test : n_test + n_val]),
        "train": sorted(order[n_test + n_val :]),
    }


# --------------------------------------------------------------------------- boilerplate

# Why strip: these lines are the distributor's, not the author's, and they repeat
# verbatim in every document, so a model learns them cheaply and samples them back
# ("... without any warranty", "sherlock-holm.es") and they flatter held-out perplexity.
_GUTENBERG_START = re.compile(r"\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG", re.IGNORECASE)
_GUTENBERG_END = re.compile(r"\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG", re.IGNORECASE)
_RULE = re.compile(r"-{5,}")  # a line of only dashes opens the sherlock-holm.es licence footer
FOOTER_OPENING = "This text is provided to you"
BYLINES = ("Arthur Conan Doyle",)  # a centred author line under each story's title
BYLINE_WITHIN = 15  # lines from the top of a document


def strip_boilerplate(text: str) -> tuple[str, str]:
    """``(kept, removed)``: ``text`` without its non-author lines, and those lines.

    Three generic rules, on whole lines: (1) Project Gutenberg: everything up to
    and including the ``*** START OF THE PROJECT GUTENBERG ...`` line, and
    everything from the ``*** END OF ...`` line on; (2) a line of only dashes (5
    or more) followed, after blank lines, by a line starting "This text is
    provided to you": from there to the end; (3) a byline (``BYLINES``) alone on
    a line among the first ``BYLINE_WITHIN`` lines. Text that matches none of
    them is returned as it is, with ``removed == ""``.
    """
    lines = text.splitlines(keepends=True)
    keep = [True] * len(lines)
    start = next((i for i, line in enumerate(lines) if _GUTENBERG_START.match(line.strip())), None)
    first = 0 if start is None else start + 1
    end = next((i for i in range(first, len(lines)) if _GUTENBERG_END.match(lines[i].strip())), None)
    footer = _footer_start(lines, first, len(lines) if end is None else end)
    last = min(i for i in (end, footer, len(lines)) if i is not None)
    keep[:first] = [False] * first
    keep[last:] = [False] * (len(lines) - last)
    for i in range(first, min(first + BYLINE_WITHIN, last)):
        if lines[i].strip() in BYLINES:
            keep[i] = False
    if all(keep):
        return text, ""
    return ("".join(ln for ln, k in zip(lines, keep, strict=True) if k),
            "".join(ln for ln, k in zip(lines, keep, strict=True) if not k))


def _footer_start(lines: Sequence[str], lo: int, hi: int) -> int | None:
    """The index of the dashed rule that opens a licence footer, if any, in ``lines[lo:hi]``."""
    for i in range(lo, hi):
        if not _RULE.fullmatch(lines[i].strip()):
            continue
        j = i + 1
        while j < hi and not lines[j].strip():
            j += 1
        if j < hi and lines[j].strip().startswith(FOOTER_OPENING):
            return i
    return None


def oov_rate(tokens: Sequence[str], vocab: Vocab) -> float:
    """Share of tokens mapped to ``<unk>``."""
    return sum(t not in vocab.stoi for t in tokens) / len(tokens) if tokens else 0.0


# --------------------------------------------------------------------------- the stage's work


@config
class PrepareTextConfig:
    split: Literal["blocks", "documents"]  # contiguous blocks of one text, or whole documents
    val_fraction: Annotated[float, Field(ge=0, lt=0.5)]
    test_fraction: Annotated[float, Field(gt=0, lt=0.5)]
    newline: Newline
    min_freq: Annotated[int, Field(ge=1)] = 1
    seed: int = 0  # used by split="documents"


MIN_SPLIT_TOKENS = 2  # one input and one target; the training stage checks its window itself


def read_documents(raw: Path) -> dict[str, str]:
    """Every ``*.txt`` in ``raw``, by file stem, in name order."""
    files = sorted(Path(raw).glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no .txt files in {raw}")
    documents = {}
    for f in files:
        try:
            documents[f.stem] = f.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            bad = err.object[err.start]
            raise ValueError(f"{f} is not UTF-8: byte {err.start} is {bad:#04x}") from None
    return documents


def prepare_corpus(
    documents: dict[str, str], cfg: PrepareTextConfig, name: str = "corpus"
) -> tuple[dict, Vocab, dict]:
    """Strip boilerplate, tokenize, split and build the vocabulary from the training split only.

    Returns (token ids per split as int64 tensors, vocabulary, meta with counts).
    Every document ends with ``<eos>``. ``name`` (the corpus or its folder) is
    only for the error raised when a split is too short to train or score on.
    """
    tokens, cased, removed = {}, {}, {}
    for doc, text in documents.items():
        kept, cut = strip_boilerplate(text)
        cased[doc] = [*tokenize(kept, cfg.newline, lower=False), EOS]
        tokens[doc] = [t.lower() for t in cased[doc]]  # = tokenize(kept): case never splits a token
        # The difference, not the cut lines' own tokens: exactly what the model no longer sees.
        removed[doc] = len(tokenize(text, cfg.newline)) + 1 - len(tokens[doc]) if cut else 0
    if all(len(t) == 1 for t in tokens.values()):
        raise ValueError(f"{name}: no words in its {len(tokens)} document(s)")
    if cfg.split == "documents":
        try:
            assignment = split_documents(list(tokens), cfg.val_fraction, cfg.test_fraction, cfg.seed)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        split_tokens = {s: [t for d in names for t in tokens[d]] for s, names in assignment.items()}
        train_cased = [t for d in assignment["train"] for t in cased[d]]
    else:
        assignment = {s: sorted(tokens) for s in ("train", "val", "test")}
        split_tokens = split_blocks(
            [t for d in sorted(tokens) for t in tokens[d]], cfg.val_fraction, cfg.test_fraction
        )
        train_cased = [t for d in sorted(tokens) for t in cased[d]][: len(split_tokens["train"])]
    counts = {s: len(toks) for s, toks in split_tokens.items()}
    fractions = {"train": 1.0, "val": cfg.val_fraction, "test": cfg.test_fraction}
    for s, n in counts.items():
        if fractions[s] > 0 and n < MIN_SPLIT_TOKENS:
            others = ", ".join(f"{o} {m}" for o, m in counts.items() if o != s)
            raise ValueError(f"{name}: the {s} split has {n} tokens ({others}); "
                             f"need at least {MIN_SPLIT_TOKENS}")
    vocab = Vocab.build(split_tokens["train"], cfg.min_freq)
    vocab = Vocab(vocab.itos, word_casing(train_cased, vocab))  # from the training text only
    ids = {s: torch.tensor(vocab.encode(toks), dtype=torch.int64) for s, toks in split_tokens.items()}
    meta = {
        "documents": assignment,
        "tokens": counts,
        "vocab_size": len(vocab),
        "oov_rate": {s: oov_rate(split_tokens[s], vocab) for s in ("val", "test")},
        "boilerplate_tokens": sum(removed.values()),
        "cased_words": len(vocab.casing),
    }
    if cfg.split == "documents":  # blocks cut one stream, so only whole documents have a split
        meta["boilerplate_tokens_by_split"] = {
            s: sum(removed[d] for d in names) for s, names in assignment.items()}
    return ids, vocab, meta


def save_corpus(ids: dict, vocab: Vocab, meta: dict, out: Path) -> None:
    """``train.pt``/``val.pt``/``test.pt`` (``{"ids": int64 (N,)}``), ``vocab.json``, ``meta.json``."""
    with atomic_dir(out) as staging:
        for split, tensor in ids.items():
            torch_save({"ids": tensor}, staging / f"{split}.pt")
        vocab.save(staging / "vocab.json")
        write_json(staging / "meta.json", meta)


def load_ids(folder: Path, split: str) -> torch.Tensor:
    """The token ids of one prepared split, int64 (N,)."""
    return torch.load(Path(folder) / f"{split}.pt", weights_only=True)["ids"]
