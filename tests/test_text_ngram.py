"""Count baselines: distributions sum to one, Kneser-Ney prefers seen continuations."""

import math

import numpy as np
import pytest
import torch

from genmodels.text.ngram import KneserNey, Unigram, score_stream, target_probs

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


@pytest.mark.parametrize("order", [1, 2, 3])
def test_scoring_by_history_matches_scoring_each_target(order):
    """score_stream and target_probs build one distribution per distinct history; what
    they report equals scoring every target with its own history, column by column."""
    gen = torch.Generator().manual_seed(0)
    data = torch.randint(0, V, (3, 40), generator=gen)  # (B, L), histories repeat
    data[0, :6] = 0  # some <unk> targets (id 0)
    model = KneserNey(V, order).fit(IDS)
    probs, top1, top5 = [], 0, 0
    for row in data.tolist():
        for t in range(1, len(row)):
            p = model.distribution(row[max(0, t - order + 1) : t])
            probs.append(p[row[t]])
            best5 = np.argpartition(-p, 5)[:5]  # as before grouping: ties fall the same way
            top1 += int(best5[np.argmax(p[best5])] == row[t])
            top5 += int(row[t] in best5)
    n = len(probs)
    got = score_stream(model, data)
    assert got["loss"] == pytest.approx(-sum(math.log(p) for p in probs) / n, rel=1e-12)
    assert got["acc"] == top1 / n and got["top5"] == top5 / n
    assert target_probs(model, data).flatten().tolist() == pytest.approx(probs, rel=1e-15)
    filled = torch.zeros(data.shape[0], data.shape[1] - 1, dtype=torch.float64)
    assert score_stream(model, data, probs=filled) == got  # the same pass also fills probs
    assert torch.equal(filled, target_probs(model, data))
    known = [p for p, y in zip(probs, data[:, 1:].flatten().tolist(), strict=True) if y != 0]
    assert got["unk_share"] == pytest.approx(1 - len(known) / n)
    assert got["ppl_known"] == pytest.approx(math.exp(-sum(map(math.log, known)) / len(known)))
