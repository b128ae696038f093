"""Seeded global split, train degrees and popularity strata."""

import numpy as np
import pandas as pd
import pytest

from prism_repro.cli import main
from prism_repro.data.interactions import finalize_interactions, write_interactions
from prism_repro.data.split import load_split, popularity_strata, split_codes


def test_same_seed_same_split_other_seed_other_split():
    a, b, c = (
        split_codes(10_001, (0.8, 0.1, 0.1), 123),
        split_codes(10_001, (0.8, 0.1, 0.1), 123),
        split_codes(10_001, (0.8, 0.1, 0.1), 246),
    )
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("n", [1, 9, 10, 1_027_370])
def test_split_sizes_are_80_10_10_within_one_interaction(n):
    codes = split_codes(n, (0.8, 0.1, 0.1), 7)
    counts = np.bincount(codes, minlength=3)
    assert counts.sum() == n
    for part, fraction in zip(counts, (0.8, 0.1, 0.1)):
        assert abs(part - fraction * n) <= 1


def test_strata_are_5_15_80_percent_with_ties_broken_by_id():
    degrees = np.array([5] * 20)  # all tied: the lowest ids rank first
    strata = popularity_strata(degrees)
    assert strata.tolist() == [0] + [1] * 3 + [2] * 16
    degrees = np.arange(100)  # item 99 the most popular
    strata = popularity_strata(degrees)
    assert set(np.flatnonzero(strata == 0)) == set(range(95, 100))
    assert set(np.flatnonzero(strata == 1)) == set(range(80, 95))
    assert (strata[:80] == 2).all()


def test_split_and_degrees_commands_write_consistent_files(tmp_path):
    rng = np.random.default_rng(0)
    frame, meta = finalize_interactions(rng.integers(0, 50, 3000), rng.integers(0, 80, 3000))
    write_interactions(frame, meta, tmp_path / "interactions.parquet")

    def split(seed: int, name: str) -> pd.DataFrame:
        out = tmp_path / name
        args = ["split", "--in", str(tmp_path / "interactions.parquet"), "--out", str(out)]
        assert main([*args, "--seed", str(seed)]) == 0
        return pd.read_parquet(out)

    # two independent calls with seed 1 write the same split; seed 2 another, of the same pairs
    first, again, other = split(1, "split_s1.parquet"), split(1, "again_s1.parquet"), split(2, "s2")
    assert first.equals(again)
    assert not first["split"].equals(other["split"])
    assert first[["user", "item"]].equals(other[["user", "item"]])
    assert (first["split"] != other["split"]).mean() > 0.2
    assert np.array_equal(np.bincount(first["split"]), np.bincount(other["split"]))
    assert (
        main(
            [
                "degrees",
                "--in",
                str(tmp_path / "split_s1.parquet"),
                "--out",
                str(tmp_path / "degrees_s1.parquet"),
            ]
        )
        == 0
    )
    data = load_split(tmp_path / "split_s1.parquet", tmp_path / "degrees_s1.parquet")
    assert len(data.train) + len(data.val) + len(data.test) == len(frame)
    for part in (data.train, data.val, data.test):
        assert part[:, 0].min() >= 0 and part[:, 0].max() < data.num_users
        assert part[:, 1].min() >= 0 and part[:, 1].max() < data.num_items
    # degrees come from the train split only
    assert np.array_equal(data.item_degree, np.bincount(data.train[:, 1], minlength=data.num_items))
    assert np.array_equal(data.user_degree, np.bincount(data.train[:, 0], minlength=data.num_users))
    assert np.array_equal(data.item_stratum, popularity_strata(data.item_degree))
