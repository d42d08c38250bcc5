"""Cache models (Grave et al. 2017; Kuhn & De Mori 1990): what each cache may see, and
the probabilities it gives on streams small enough to check by hand."""

import math

import pytest
import torch

from genmodels.text.cache import (
    cache_metrics,
    mixed_nll,
    mixed_prob,
    neural_cache,
    neural_caches,
    tune,
    unigram_cache,
)


def test_unigram_cache_counts_the_previous_words_within_its_size():
    y = torch.tensor([[5, 5, 7, 5, 7, 7]])
    # t=0: empty; t=1: [5] -> 1; t=2: [5 5] -> 0 for 7; t=3: [5 5 7] -> 2/3 for 5;
    # size 3 at t=4: [5 7 5] -> 1/3 for 7; t=5: [7 5 7] -> 2/3 for 7
    assert unigram_cache(y, 3)[0].tolist() == pytest.approx([0, 1, 0, 2 / 3, 1 / 3, 2 / 3])


def test_neural_cache_weights_earlier_positions_by_the_softmax_of_dot_products():
    h = torch.tensor([[[1.0], [2.0], [0.5]]])  # (B=1, L=3, C=1)
    y = torch.tensor([[4, 9, 4]])
    theta = 0.7
    p = neural_cache(h, y, theta, size=10)[0]
    assert p[0] == 0  # nothing before the first position
    assert p[1] == 0  # the only earlier target (4) is not 9
    # t=2 (h=0.5): keys h=1 (target 4) and h=2 (target 9): p(4) = softmax_0
    w = [math.exp(theta * 0.5 * 1.0), math.exp(theta * 0.5 * 2.0)]
    assert p[2].item() == pytest.approx(w[0] / sum(w))


def test_neural_cache_never_sees_the_current_or_a_later_position():
    torch.manual_seed(0)
    h = torch.randn(2, 700, 8)  # longer than one chunk of queries
    y = torch.randint(0, 5, (2, 700))
    p = neural_cache(h, y, 0.5, size=300)
    h2, y2 = h.clone(), y.clone()
    h2[:, 600:] = torch.randn(2, 100, 8)  # change the future from t=600 on
    y2[:, 601:] = torch.randint(0, 5, (2, 99))
    p2 = neural_cache(h2, y2, 0.5, size=300)
    assert torch.equal(p[:, :600], p2[:, :600])
    assert ((p >= 0) & (p <= 1 + 1e-9)).all()


def test_a_flat_neural_cache_is_the_unigram_cache_of_the_same_window():
    """theta -> 0 weighs every cached position alike: the unigram cache over the same
    positions, whatever the hidden states (a check of the band and of the chunking)."""
    torch.manual_seed(1)
    h = torch.randn(3, 1100, 4)
    y = torch.randint(0, 7, (3, 1100))
    for size in (1, 50, 600):
        assert torch.allclose(neural_cache(h, y, 1e-9, size), unigram_cache(y, size), atol=1e-6)


def test_one_grid_pass_gives_each_configuration_alone():
    torch.manual_seed(2)
    h = torch.randn(2, 600, 4)
    y = torch.randint(0, 6, (2, 600))
    grid = neural_caches(h, y, (20, 550), (0.1, 2.0))
    for size in (20, 550):
        for theta in (0.1, 2.0):
            assert torch.allclose(grid[size, theta], neural_cache(h, y, theta, size))


def test_tune_picks_the_cache_and_weight_of_lowest_loss():
    p_model = torch.full((1, 4), 0.1, dtype=torch.float64)
    caches = {("useless",): torch.zeros(1, 4, dtype=torch.float64),
              ("right",): torch.ones(1, 4, dtype=torch.float64)}
    key, lam = tune(p_model, caches, (0.1, 0.5))
    assert (key, lam) == (("right",), 0.5)
    assert mixed_nll(p_model, caches[key], lam)[0, 0].item() == pytest.approx(-math.log(0.55))
    m = cache_metrics(mixed_prob(p_model, caches[key], lam), torch.tensor([[0, 3, 3, 3]]), unk_id=0)
    assert m["ppl"] == pytest.approx(1 / 0.55) and m["ppl_known"] == pytest.approx(1 / 0.55)
