"""Count baselines: distributions sum to one, Kneser-Ney prefers seen continuations."""

import numpy as np
import pytest
import torch

from genmodels.text.ngram import KneserNey, Unigram, score_stream

IDS = [1, 3, 4, 5, 1, 3, 4, 6, 1, 3, 7, 5, 2, 3, 4, 5, 1] * 3  # vocabulary 0..9; 8, 9 unseen
V = 10


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("history", [(), (3,), (1, 3), (3, 4), (8, 9), (0, 0, 0)])
def test_kneser_ney_sums_to_one(order, history):
    p = KneserNey(V, order).fit(IDS).distribution(history)
    assert p.shape == (V,)
    assert np.isclose(p.sum(), 1.0) and (p > 0).all()  # unseen words keep some mass


def test_kneser_ney_prefers_what_followed_the_history():
    p = KneserNey(V, 3).fit(IDS).distribution((1, 3))
    assert p.argmax() == 4 and p[4] > p[7] > p[8]


def test_unigram_is_add_one():
    p = Unigram(V).fit(IDS).distribution(())
    assert np.isclose(p.sum(), 1.0)
    assert np.isclose(p[8], 1 / (len(IDS) + V))


def test_score_stream_reports_perplexity_and_accuracy():
    data = torch.tensor([IDS[:17], IDS[17:34]])  # (B, L)
    kn = score_stream(KneserNey(V, 3).fit(IDS), data)
    uni = score_stream(Unigram(V).fit(IDS), data)
    assert kn["ppl"] < uni["ppl"]
    assert 0 <= kn["acc"] <= kn["top5"] <= 1
