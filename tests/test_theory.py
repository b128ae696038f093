"""The theory's formulas by hand, and the Monte-Carlo simulation against them.

Formulas: Observation 1, the exact inclusion probabilities of shuffled batches and of draws with
replacement, Theorem 3.1, Corollaries 1 and 2, the equilibrium norm, and which Figure 7 settings
show the picture the paper describes. Simulation: Observation 1 within the stated Monte-Carlo
error (exact binomial test, |z| <= 4), Theorem 3.1 under SGD within 4 standard errors of the paired
per-step difference, and a one-step case where the theorem is exact to rounding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prism_repro import theory
from prism_repro.claims import claims_table, theory_claims
from prism_repro.simulate import (
    SCENARIOS,
    Graph,
    binomial_z,
    degree_bins,
    planted_init,
    power_law_graph,
    simulate,
)

Z_MAX = 4.0


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: one thread is fastest (and does not fight other jobs for the cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# formulas


def test_observation_1_by_hand():
    # degree 10, |B|/|E| = 0.1: 1 - 0.9^10
    assert theory.inclusion_probability(10, 0.1) == pytest.approx(0.6513215599)
    assert theory.inclusion_probability(1, 0.25) == pytest.approx(0.25)
    assert theory.inclusion_probability(0, 0.5) == 0.0
    grid = theory.inclusion_probability(np.array([[1, 10, 100]]), np.array([[1e-3], [1e-2]]))
    assert grid.shape == (2, 3)
    assert np.all(np.diff(grid, axis=1) > 0) and np.all(np.diff(grid, axis=0) > 0)
    with pytest.raises(ValueError, match="batch fraction"):
        theory.inclusion_probability(3, 1.5)


def test_exact_inclusion_probabilities_by_hand():
    # |E| = 10, |B| = 3, d = 2. Shuffled batch: 1 - C(8,3)/C(10,3) = 1 - 56/120.
    assert theory.inclusion_probability_exact(2, 3, 10, "shuffle") == pytest.approx(64 / 120)
    # draws with replacement: 1 - (1 - 2/10)^3 = 0.488; Observation 1: 1 - 0.7^2 = 0.51
    assert theory.inclusion_probability_exact(2, 3, 10, "replacement") == pytest.approx(0.488)
    assert theory.inclusion_probability(2, 0.3) == pytest.approx(0.51)
    # degree 1: shuffled batches give |B|/|E| exactly; a batch larger than |E| - d always has it
    assert theory.inclusion_probability_exact(1, 3, 10, "shuffle") == pytest.approx(0.3)
    assert theory.inclusion_probability_exact(8, 3, 10, "shuffle") == 1.0
    with pytest.raises(ValueError, match="sampler"):
        theory.inclusion_probability_exact(1, 3, 10, "bernoulli")


def test_observation_1_is_the_shuffled_batch_limit():
    d = np.array([1, 5, 50, 500])
    exact = theory.inclusion_probability_exact(d, 1000, 1_000_000, "shuffle")
    assert np.allclose(exact, theory.inclusion_probability(d, 1e-3), rtol=1e-3)
    # with replacement a degree-1 item is in a full-size batch with 1 - 1/e, not 1
    rep = theory.inclusion_probability_exact(1, 100_000, 100_000, "replacement")
    assert rep == pytest.approx(1 - np.exp(-1), abs=1e-5)


def test_corollary_2_by_hand():
    # 1 - 0.9^10 * (1 - 0.5)
    assert theory.inclusion_probability_with_negatives(10, 0.1, 0.5) == pytest.approx(
        1 - 0.3486784401 * 0.5
    )
    assert theory.negative_fraction(2, 100, 1000) == pytest.approx(0.2)
    assert theory.negative_fraction(2, 1000, 1000) == 1.0  # capped: every item a negative
    assert theory.inclusion_probability_with_negatives(3, 0.01, 1.0) == 1.0


def test_theorem_3_1_by_hand():
    # eta lambda = 0.1 * 0.5 = 0.05; decay 2 * 0.05 * (0.05 - 2) = -0.195;
    # gradient 0.6513215599 * 0.1^2 * (1 - 0.25) / 2 = 0.0024424558
    assert theory.decay_term(2.0, 0.1, 0.5) == pytest.approx(-0.195)
    value = theory.expected_magnitude_change(
        10, 0.1, lr=0.1, weight_decay=0.5, sq_norm=2.0, cos_sq=0.25
    )
    assert value == pytest.approx(-0.195 + 0.0024424558, abs=1e-10)
    # no decay, item always in the batch: pure growth eta^2 (1 - cos^2) / ||i||^2
    assert theory.expected_magnitude_change(
        1, 1.0, lr=0.1, weight_decay=0.0, sq_norm=1.0, cos_sq=0.0
    ) == pytest.approx(0.01)
    # Corollary 1: both terms times P(i in B)
    batched = theory.expected_sq_norm_change_batched(0.5, 2.0, 0.375, 0.1, 0.5)
    assert batched == pytest.approx(0.5 * (-0.195 + 0.01 * 0.375))
    with pytest.raises(ValueError, match="cos"):
        theory.expected_magnitude_change(1, 0.1, cos_sq=1.2)


def test_the_equilibrium_norm_zeroes_the_expected_change():
    lr, wd, one_minus = 0.1, 0.5, 0.5
    for p in (0.01, 0.3, 1.0):
        s = theory.equilibrium_sq_norm(p, one_minus, lr, wd)
        assert theory.expected_sq_norm_change(p, s, one_minus / s, lr, wd) == pytest.approx(
            0.0, abs=1e-15
        )
    # full-table decay: ||i||^2 grows as P^(1/2)
    ratio = theory.equilibrium_sq_norm(0.64, 0.1, 1e-3, 1e-6) / theory.equilibrium_sq_norm(
        0.01, 0.1, 1e-3, 1e-6
    )
    assert ratio == pytest.approx(8.0)


def test_figure_7_settings_show_the_described_picture():
    fig7 = theory.figure7_regimes(
        theory.FIG7_LR, theory.FIG7_WEIGHT_DECAY, theory.FIG7_COS_SQ, theory.FIG7_SQ_NORM
    )
    assert theory.shows_described_picture(fig7)
    assert fig7["ratio"] == pytest.approx(0.02)  # 2 * 1e-6 / (1e-3 * 0.1)
    # the other reading of the 0.9 (cos = 0.9, cos^2 = 0.81) shows it too
    assert theory.shows_described_picture(theory.figure7_regimes(1e-3, 1e-6, 0.81))
    # the former settings (lr 1e-3, wd 1e-4): negative everywhere, under either reading
    for cos_sq in (0.81, 0.9):
        old = theory.figure7_regimes(1e-3, 1e-4, cos_sq)
        assert old["positive"] == 0.0 and not theory.shows_described_picture(old)
    # lr 1e-2 with wd 1e-4: a visible shrink at small batches, not "none"
    assert not theory.shows_described_picture(theory.figure7_regimes(1e-2, 1e-4, 0.9))


# ---------------------------------------------------------------------------------------------
# simulation pieces


def test_binomial_z():
    assert binomial_z(50, 100, 0.5) == 0.0
    assert binomial_z(100, 100, 1.0) == 0.0  # deterministic and right
    assert binomial_z(99, 100, 1.0) == -40.0  # impossible under the null
    assert binomial_z(80, 100, 0.5) > 5 and binomial_z(20, 100, 0.5) < -5
    # a single rare outcome is no evidence: the exact test, not the normal approximation
    assert abs(binomial_z(1, 1000, 1e-3)) < 1


def test_degree_bins_cover_every_degree():
    degree = np.array([1, 1, 2, 3, 7, 40, 1000])
    edges = degree_bins(degree, 5)
    assert edges[0] == 1 and edges[-1] > degree.max()
    assert np.all(np.diff(edges) > 0)
    bins = np.searchsorted(edges, degree, side="right") - 1
    assert np.all((bins >= 0) & (bins < len(edges) - 1))


def test_power_law_graph():
    g = power_law_graph(200, 300, 5000, 1.0, seed=3)
    pairs = set(zip(g.users, g.items))
    assert len(pairs) == g.num_edges  # no duplicate pairs
    deg = g.item_degree()
    assert deg.min() >= 1 and deg.sum() == g.num_edges  # items without interactions dropped
    assert deg.max() > 20 * np.median(deg)  # a heavy head
    same = power_law_graph(200, 300, 5000, 1.0, seed=3)
    assert np.array_equal(same.users, g.users) and np.array_equal(same.items, g.items)


def test_planted_init_has_the_requested_cosine():
    import torch

    gen = torch.Generator().manual_seed(0)
    anchor = torch.zeros(64, dtype=torch.float64)
    anchor[0] = 1.0
    x = planted_init(500, 64, 0.9, anchor, gen)
    y = planted_init(500, 64, 0.9, anchor, gen)
    assert torch.allclose(x.norm(dim=1), torch.ones(500, dtype=torch.float64))
    cos2 = ((x * y).sum(1) ** 2).mean().item()
    assert cos2 == pytest.approx(0.9, abs=0.01)


# ---------------------------------------------------------------------------------------------
# simulation against the theory


@pytest.fixture(scope="module")
def graph() -> Graph:
    return power_law_graph(600, 600, 6000, 1.0, seed=7)


def run(graph, scenario, fraction, steps=120, **kw):
    kw = {"lr": 1e-3, "weight_decay": 1e-6, "dim": 8, "bins": 6, "seed": 1, **kw}
    return simulate(graph, scenario, fraction, steps=steps, **kw)


@pytest.mark.parametrize("fraction", [0.01, 0.1])
def test_observation_1_within_the_monte_carlo_error(graph, fraction):
    frame = run(graph, "sgd", fraction)
    assert np.all(np.abs(frame["p_z"]) <= Z_MAX), frame[["degree_mean", "p_theory", "p_sim"]]
    # and the stated error is the binomial one: the differences are of its order
    assert np.all(np.abs(frame["p_sim"] - frame["p_theory"]) <= 5 * frame["p_se"] + 1e-12)


def test_draws_with_replacement_follow_their_exact_probability(graph):
    frame = run(graph, "sgd_replacement", 1.0, steps=60)
    assert np.all(np.abs(frame["p_exact_z"]) <= Z_MAX)
    # and not Observation 1: a degree-1 item is in a full-size batch with 1 - 1/e, not 1
    low = frame.iloc[0]
    assert low["degree_lo"] == 1 and low["p_theory"] == 1.0
    assert low["p_sim"] < 0.8 and abs(low["p_z"]) > Z_MAX


@pytest.mark.parametrize("fraction", [0.003, 0.03, 1.0])
def test_theorem_3_1_under_sgd_within_four_standard_errors(graph, fraction):
    frame = run(graph, "sgd", fraction)
    resolved = frame[frame["resolved"]]
    assert len(resolved) >= 3
    assert np.all(np.abs(resolved["drift_z"]) <= Z_MAX), resolved[
        ["degree_mean", "drift_pred", "drift_sim", "drift_se"]
    ]
    assert np.all(resolved["copies"] == 1.0)  # one pair per item per batch


def test_theorem_3_1_is_exact_for_one_step_of_a_full_batch():
    # every item has one interaction, the batch is the whole graph: each item gets exactly the
    # theorem's update, ||i'||^2 = (1 - eta lambda)^2 ||i||^2 + eta^2 (1 - cos^2) / ||i||^2
    n = 50
    g = Graph("ones", np.arange(n) % 7, np.arange(n), 7, n)
    frame = run(g, "sgd", 1.0, steps=3, lr=0.05, weight_decay=0.3, bins=1)
    assert frame["p_sim"].iloc[0] == 1.0
    assert frame["drift_sim"].iloc[0] == pytest.approx(frame["drift_pred"].iloc[0], rel=1e-12)
    batched = run(g, "sgd_batched", 1.0, steps=3, lr=0.05, weight_decay=0.3, bins=1)
    assert batched["drift_sim"].iloc[0] == pytest.approx(batched["drift_pred"].iloc[0], rel=1e-12)


def test_all_pairs_outgrow_the_theorem_where_items_repeat_in_a_batch(graph):
    frame = run(graph, "sgd_all_pairs", 0.1, steps=60)
    top = frame.iloc[-1]
    assert top["copies"] > 5  # the most popular bin comes with many of its interactions
    assert top["drift_sim"] > 3 * top["drift_pred"]
    assert frame.iloc[0]["copies"] == pytest.approx(1.0)


def test_corollary_2_inclusion_within_the_monte_carlo_error(graph):
    frame = run(graph, "sgd_negatives", 0.01)
    expected = theory.negative_fraction(1.0, frame["batch_size"], graph.num_items)
    assert np.allclose(frame["negative_fraction"], expected)
    assert (frame["p_theory"] >= frame["negative_fraction"]).all()
    assert np.all(np.abs(frame["p_z"]) <= Z_MAX)


def test_corollary_1_batched_decay_within_four_standard_errors(graph):
    frame = run(graph, "sgd_batched", 0.01)
    resolved = frame[frame["resolved"]]
    assert np.all(np.abs(resolved["drift_z"]) <= Z_MAX)


def test_adam_departs_from_the_theorem(graph):
    frame = run(graph, "adam", 0.03, steps=40)
    ratio = (frame["drift_sim"] / frame["drift_pred"]).abs()
    assert ratio.median() > 100  # first-order, per-coordinate steps, not eta^2 ones


def test_bad_settings_raise(graph):
    with pytest.raises(ValueError, match="scenario"):
        run(graph, "sgd_nesterov", 0.1)
    with pytest.raises(ValueError, match="batch fraction"):
        run(graph, "sgd", 0.0)
    with pytest.raises(ValueError, match="steps"):
        run(graph, "sgd", 0.1, steps=1)


def test_every_scenario_is_documented():
    import prism_repro.simulate as sim

    for name in SCENARIOS:
        assert f"``{name}``" in sim.__doc__


# ---------------------------------------------------------------------------------------------
# claims rows


@pytest.fixture(scope="module")
def simulated(graph) -> pd.DataFrame:
    frames = [
        run(graph, scenario, fraction, steps=60)
        for scenario in SCENARIOS
        for fraction in (0.003, 0.03)
    ]
    return pd.concat(frames, ignore_index=True)


def test_theory_claims_rows(simulated):
    rows = {r["claim"]: r for r in theory_claims(simulated)}
    assert len(rows) == 9
    verdicts = [r["verdict"] for r in rows.values()]
    assert "not run" not in verdicts
    obs1 = next(r for c, r in rows.items() if c.startswith("Observation 1: P"))
    assert obs1["verdict"] == "reproduced" and obs1["ours"] <= Z_MAX
    sgd = next(r for c, r in rows.items() if c.startswith("Theorem 3.1 under SGD"))
    assert sgd["verdict"] == "reproduced"
    adam = next(r for c, r in rows.items() if c.startswith("Theorem 3.1 under Adam"))
    assert adam["verdict"] == "not reproduced" and abs(adam["ours"]) > 100
    batched = next(r for c, r in rows.items() if c.startswith("Corollary 1"))
    assert batched["verdict"] == "reproduced" and abs(batched["ours"] - 1) <= 0.25


def test_theory_claims_without_a_simulation_are_not_run():
    rows = theory_claims(None)
    assert len(rows) == 9 and {r["verdict"] for r in rows} == {"not run"}


def test_claims_table_carries_the_theory_rows(simulated):
    columns = ["experiment", "dataset", "run", "backbone", "loss", "weight_decay", "diverged"]
    table = claims_table(pd.DataFrame(columns=columns), pd.DataFrame(), simulated)
    theory_rows = table[table["claim"].isin([r["claim"] for r in theory_claims(None)])]
    assert len(theory_rows) == 9 and (theory_rows["verdict"] != "not run").all()
    assert (table.drop(theory_rows.index)["verdict"] == "not run").all()
