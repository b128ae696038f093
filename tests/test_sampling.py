import pytest
import torch

from prism_repro.sampling import NEGATIVE_SAMPLING_MODES, sample_negatives, unique_ids

POS = torch.tensor([1, 1, 1, 5, 9, 9])


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("mode", NEGATIVE_SAMPLING_MODES)
def test_shape_dtype_and_range(mode):
    neg = sample_negatives(POS, 12, 7, _gen(), mode=mode)
    assert neg.shape == (6, 7) and neg.dtype == torch.long
    assert neg.min() >= 0 and neg.max() < 12


def test_batch_mode_draws_only_batch_items_uniformly_over_distinct_items():
    neg = sample_negatives(POS, 12, 20_000, _gen(), mode="batch")
    assert set(neg.unique().tolist()) == {1, 5, 9}
    # uniform over the distinct items (1/3 each), not weighted by how often they occur in POS
    freq = torch.bincount(neg.flatten(), minlength=12)[[1, 5, 9]].double() / neg.numel()
    assert freq.tolist() == pytest.approx([1 / 3] * 3, abs=0.01)


def test_all_mode_reaches_items_outside_the_batch():
    neg = sample_negatives(POS, 12, 2_000, _gen(), mode="all")
    assert set(neg.unique().tolist()) == set(range(12))


@pytest.mark.parametrize("mode", NEGATIVE_SAMPLING_MODES)
def test_seeded_generator_is_deterministic(mode):
    a = sample_negatives(POS, 12, 5, _gen(3), mode=mode)
    b = sample_negatives(POS, 12, 5, _gen(3), mode=mode)
    c = sample_negatives(POS, 12, 5, _gen(4), mode=mode)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_batch_mode_ignores_the_order_of_positives():
    # the pool is the sorted set of batch items, so permuting the batch permutes nothing else
    a = sample_negatives(POS, 12, 5, _gen(1))
    b = sample_negatives(POS.flip(0), 12, 5, _gen(1))
    assert torch.equal(a, b)


def test_edge_cases():
    assert sample_negatives(POS, 12, 0, _gen()).shape == (6, 0)
    assert sample_negatives(torch.tensor([], dtype=torch.long), 12, 3, _gen()).shape == (0, 3)
    with pytest.raises(ValueError, match="mode"):
        sample_negatives(POS, 12, 1, _gen(), mode="popularity")
    with pytest.raises(ValueError, match="k >= 0"):
        sample_negatives(POS, 12, -1, _gen())


@pytest.mark.parametrize("n, size", [(0, 7), (1, 7), (50, 7), (5000, 300)])
def test_unique_ids_equals_torch_unique(n, size):
    ids = torch.randint(size, (n,), generator=torch.Generator().manual_seed(n))
    uniq, inverse = unique_ids(ids, size)
    expected, expected_inverse = torch.unique(ids, sorted=True, return_inverse=True)
    assert torch.equal(uniq, expected) and torch.equal(inverse, expected_inverse)
