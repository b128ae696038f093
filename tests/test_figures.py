"""Figure functions: every registered figure renders from fabricated frames (and from none), the
Theorem 3.1 formula by hand, the Spearman rho in Figure 2's titles, diverged runs left out."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from prism_repro.claims import claims_table, debias_claim
from prism_repro.figures import (
    DEBIAS_MARKERS,
    FIGURES,
    FigureData,
    debiasing_tradeoff,
    magnitude_change_heatmap,
    magnitude_vs_degree,
    ndcg_vs_epochs,
    ndcg_vs_weight_decay,
    save,
    spearman_rho,
    training_curves,
)
from prism_repro.picks import DEBIAS_METHODS, debias_points
from prism_repro.runspec import RunSpec

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATASETS = ["Gowalla", "Yelp2018"]
WDS = [0.0, 1e-8, 1e-6, 1e-4]


def fabricate(
    experiment: str,
    settings: list[dict],
    datasets=DATASETS,
    seeds=(123, 246, 492),
    num_items=400,
    num_users=150,
    cosine=False,
    seed=0,
) -> FigureData:
    """Plausible frames for every (setting, dataset, seed): one metrics row per run, its epoch
    curve, user and item norms (item norms track degree when weight decay is on)."""
    rng = np.random.default_rng(seed)
    metrics, epochs, norms = [], [], []
    for dataset in datasets:
        item_degree = np.minimum(rng.zipf(1.7, num_items), 3000)
        user_degree = np.minimum(rng.zipf(1.9, num_users), 500)
        rank = pd.Series(item_degree).rank(ascending=False, method="first").to_numpy()
        stratum = np.where(rank <= 0.05 * num_items, 0, np.where(rank <= 0.20 * num_items, 1, 2))
        for setting in settings:
            spec_args = dict(
                backbone="mf",
                loss="directau",
                decay="full",
                weight_decay=0.0,
                init="xavier",
                alpha=0.0,
                lr=0.01,
                seed=0,
            )
            spec_args.update(setting)
            for s in seeds:
                spec = RunSpec(**{**spec_args, "seed": s})
                wd, alpha = spec.weight_decay, spec.alpha
                pop_share = (
                    0.3
                    + 0.12 * (np.log10(wd) + 9 if wd > 0 else 0)
                    - 0.2 * (1 - alpha) * (spec.init == "prism")
                )
                pop_share = float(np.clip(pop_share, 0.05, 0.9))
                overall = 0.12 + 0.01 * rng.standard_normal()
                popular = overall * pop_share
                neutral = overall * (1 - pop_share) * 0.6
                best = int(rng.integers(20, 60) * (0.5 + alpha if spec.init == "prism" else 1.0))
                metrics.append(
                    dict(
                        experiment=experiment,
                        dataset=dataset,
                        run=spec.run_id,
                        backbone=spec.backbone,
                        loss=spec.loss,
                        decay=spec.decay,
                        weight_decay=wd,
                        init=spec.init,
                        alpha=alpha,
                        lr=spec.lr,
                        seed=s,
                        gamma=spec.gamma,
                        best_epoch=best,
                        epochs_run=best + 10,
                        stop_reason="patience",
                        diverged=False,
                        best_val_ndcg=overall,
                        train_seconds=10.0,
                        val_ndcg=overall,
                        test_ndcg=overall,
                        test_ndcg_popular=popular,
                        test_ndcg_neutral=neutral,
                        test_ndcg_unpopular=overall - popular - neutral,
                        k=20,
                    )
                )
                ep = np.arange(1, best + 11)
                dot = overall * (1 - np.exp(-ep / (15 + 5e6 * wd))) + 0.002 * rng.standard_normal(
                    len(ep)
                )
                cos = overall * 0.9 * (1 - np.exp(-ep / 5)) if cosine else np.full(len(ep), np.nan)
                epochs.append(
                    pd.DataFrame(
                        dict(
                            experiment=experiment,
                            dataset=dataset,
                            run=spec.run_id,
                            epoch=ep,
                            loss=1 / ep,
                            val_ndcg=dot,
                            val_ndcg_cosine=cos,
                            seconds=0.5,
                        )
                    )
                )
                signal = 0.4 if wd > 0 and spec.decay == "full" else 0.02
                item_norm = 1 + signal * np.log(item_degree) + 0.15 * rng.standard_normal(num_items)
                user_norm = 1 + 0.1 * rng.standard_normal(num_users)
                for node, deg, norm, strat in (
                    ("user", user_degree, user_norm, -1),
                    ("item", item_degree, item_norm, stratum),
                ):
                    norms.append(
                        pd.DataFrame(
                            dict(
                                experiment=experiment,
                                dataset=dataset,
                                run=spec.run_id,
                                node=node,
                                id=np.arange(len(deg)),
                                degree=deg,
                                norm=np.abs(norm),
                                stratum=strat,
                            )
                        )
                    )
    return FigureData(
        pd.DataFrame(metrics),
        pd.concat(epochs, ignore_index=True),
        pd.concat(norms, ignore_index=True),
    )


def concat(*parts: FigureData) -> FigureData:
    return FigureData(
        *(
            pd.concat([getattr(p, f) for p in parts], ignore_index=True)
            for f in ("metrics", "epochs", "norms")
        )
    )


def wd_grid(**common) -> list[dict]:
    return [
        dict(common, weight_decay=wd, decay=common.get("decay", "full") if wd else "none")
        for wd in WDS
    ]


ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0]


def figure_inputs(name: str, datasets=DATASETS) -> FigureData:
    """What the pipeline hands each figure: its experiment(s), as the brief of each figure says."""
    kw = dict(datasets=datasets)
    if name in ("fig1", "fig2"):
        return fabricate("fig1", wd_grid(loss="bpr") + wd_grid(loss="directau"), **kw)
    if name == "fig3":
        return fabricate("fig3", wd_grid(loss="directau", decay="batched"), **kw)
    if name in ("fig4", "fig5"):
        sweep = fabricate("fig4", [dict(init="prism", alpha=a) for a in ALPHAS], **kw)
        tuned = fabricate(
            "table1_wd",
            [
                dict(weight_decay=1e-6),
                dict(loss="ssm", weight_decay=1e-8),
                dict(backbone="nlmf", weight_decay=1e-4),
            ],
            seed=1,
            **kw,
        )
        return concat(sweep, tuned)
    if name == "fig6":
        return fabricate("fig6", wd_grid(loss="directau"), cosine=True, **kw)
    if name == "fig7":
        return FigureData(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), theory_frame())
    if name == "fig8":
        return fabricate("fig8", wd_grid(backbone="lightgcn", loss="directau"), **kw)
    if name == "fig9":
        return debias_frames(datasets)
    if name == "fig10":
        return fabricate("fig10", wd_grid(loss="ssm") + wd_grid(loss="mawu"), **kw)
    if name == "fig11":
        return fabricate(
            "fig11",
            [
                s
                for loss in ("ssm", "directau", "mawu")
                for s in wd_grid(backbone="nlmf", loss=loss)
            ],
            **kw,
        )
    raise KeyError(name)


# Figure 9's methods as (label, loss, init, settings); a setting is
# (name, val NDCG, test NDCG, popular NDCG, unpopular NDCG) before per-seed noise
DEBIAS_RUNS = [
    ("bpr", "bpr", "xavier", [("wd1e-06", 0.100, 0.100, 0.050, 0.010)]),
    (
        "directau",
        "directau",
        "xavier",
        [("wd1e-06", 0.110, 0.110, 0.050, 0.015), ("wd0", 0.090, 0.090, 0.030, 0.020)],
    ),
    (
        "prism",
        "directau",
        "prism",
        [
            ("a1", 0.115, 0.116, 0.040, 0.020),
            ("a0.5", 0.120, 0.120, 0.030, 0.030),  # best on validation
            ("a0", 0.100, 0.130, 0.010, 0.060),  # best on test, not chosen
        ],
    ),
    ("resn", "resn", "xavier", [("w0.01", 0.090, 0.090, 0.030, 0.015)]),
    ("ipl", "ipl", "xavier", [("w0.1", 0.095, 0.095, 0.040, 0.012)]),
    ("macr", "macr", "xavier", [("c0", 0.080, 0.080, 0.020, 0.016)]),
]


def debias_frames(datasets=DATASETS, seeds=(123, 246, 492), runs=DEBIAS_RUNS) -> FigureData:
    """Figure 9's runs: per dataset, method, setting and seed a metrics row; the seeds spread
    test NDCG by -1 %, 0, +1 % (means stay as listed)."""
    rows = []
    for dataset in datasets:
        for label, loss, init, settings in runs:
            for name, val, test, pop, unpop in settings:
                for seed, f in zip(seeds, (0.99, 1.0, 1.01)):
                    rows.append(
                        dict(
                            experiment="fig9",
                            dataset=dataset,
                            run=f"mf_{label}-{name}_s{seed}",
                            backbone="mf",
                            loss=loss,
                            decay="none",
                            weight_decay=0.0,
                            init=init,
                            alpha=0.5 if init == "prism" else 0.0,
                            lr=0.01,
                            seed=seed,
                            diverged=False,
                            best_epoch=10,
                            epochs_run=20,
                            val_ndcg=val,
                            test_ndcg=test * f,
                            test_ndcg_popular=pop,
                            test_ndcg_neutral=test * f - pop - unpop,
                            test_ndcg_unpopular=unpop,
                            k=20,
                        )
                    )
    return FigureData(pd.DataFrame(rows), pd.DataFrame(), pd.DataFrame())


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC), path


def texts(fig: plt.Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_registry_has_every_figure():
    assert set(FIGURES) == {f"fig{n}" for n in range(1, 12)}


@pytest.mark.parametrize("name", sorted(FIGURES))
@pytest.mark.parametrize("datasets", [["Synthetic"], DATASETS], ids=["one-dataset", "two-datasets"])
def test_every_figure_renders_to_png(name, datasets, tmp_path):
    fig = FIGURES[name](figure_inputs(name, datasets))
    assert "no runs" not in texts(fig)
    save(fig, tmp_path / f"{name}.png", tmp_path / f"{name}.pdf", dpi=60)
    assert_png(tmp_path / f"{name}.png")
    assert (tmp_path / f"{name}.pdf").read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_every_figure_renders_without_any_runs(name, tmp_path):
    fig = FIGURES[name](FigureData(pd.DataFrame(), pd.DataFrame(), pd.DataFrame()))
    assert ("no simulation" if name == "fig7" else "no runs") in texts(fig)
    save(fig, tmp_path / "x.png", tmp_path / "x.pdf", dpi=60)
    assert_png(tmp_path / "x.png")


@functools.cache
def theory_frame() -> pd.DataFrame:
    """A small simulation (prism_repro.simulate) for Figure 7: two scenarios, three fractions."""
    import torch

    from prism_repro.simulate import power_law_graph, run_all

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        graph = power_law_graph(300, 300, 3000, 1.0, seed=7)
        return run_all(
            graph,
            ["sgd", "sgd_all_pairs"],
            [0.003, 0.03, 1.0],
            steps=20,
            lr=1e-3,
            weight_decay=1e-6,
            dim=8,
            bins=5,
        )
    finally:
        torch.set_num_threads(threads)


def test_fig7_draws_the_paper_map_beside_the_simulation():
    frame = theory_frame()
    fig = magnitude_change_heatmap(
        FigureData(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), frame)
    )
    a, b = fig.axes[0], fig.axes[1]
    assert "η = 0.001, λ = 1e-06" in a.get_title() and "cos²(u, i) = 0.9" in a.get_title()
    # (b): one cell per (batch fraction, degree bin) of the SGD rows, on (a)'s colour scale
    (mesh,) = b.collections
    sgd = frame[frame["scenario"] == "sgd"]
    assert mesh.get_array().size == len(sgd)
    assert mesh.norm.vmin == a.collections[0].norm.vmin
    assert mesh.norm.vmin == -mesh.norm.vmax  # symmetric: a small decay looks small
    # (e) names each scenario with its median simulated / predicted change
    labels = [t.get_text() for t in fig.axes[4].get_legend().get_texts()]
    assert any(t.startswith("SGD, all pairs: median") for t in labels)
    # without a simulation: the analytic map alone, the other panels say so
    empty = magnitude_change_heatmap(FigureData(pd.DataFrame(), pd.DataFrame(), pd.DataFrame()))
    assert texts(empty).count("no simulation") == 5


def test_spearman_rho_of_monotone_data():
    assert spearman_rho([1, 2, 5, 40], [0.1, 0.3, 0.35, 2.0]) == pytest.approx(1.0)
    assert spearman_rho([1, 2, 5, 40], [3.0, 2.0, 1.0, 0.5]) == pytest.approx(-1.0)
    assert np.isnan(spearman_rho([1, 1, 1], [1.0, 2.0, 3.0]))
    assert np.isnan(spearman_rho([1], [1.0]))


def test_fig2_puts_each_runs_rho_in_its_panel_title():
    data = figure_inputs("fig2", ["Synthetic"])
    norms = data.norms.copy()
    decayed = norms["run"].str.contains("_full1e-06_")
    norms.loc[decayed, "norm"] = np.log1p(norms.loc[decayed, "degree"])  # monotone in degree
    fig = magnitude_vs_degree(FigureData(data.metrics, data.epochs, norms))
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 4  # (a)/(b) x BPR/DirectAU, one dataset
    decay_titles = [t for t in titles if "weight decay 1e-06" in t]
    assert len(decay_titles) == 2 and all(t.endswith("Spearman ρ = 1.00") for t in decay_titles)
    none_titles = [t for t in titles if "no weight decay" in t]
    assert len(none_titles) == 2 and not any(t.endswith("ρ = 1.00") for t in none_titles)
    # one run (the lowest seed) per panel: every item appears once
    for ax in fig.axes:
        assert sum(len(c.get_offsets()) for c in ax.collections) == 400


def test_fig2_falls_back_to_the_nearest_weight_decay(caplog):
    data = figure_inputs("fig2", ["Synthetic"])
    keep = data.metrics["weight_decay"].isin([0.0, 1e-4])
    with caplog.at_level(logging.WARNING, logger="prism_repro.figures"):
        fig = magnitude_vs_degree(FigureData(data.metrics[keep], data.epochs, data.norms))
    assert "no runs at weight decay 1e-06" in caplog.text
    assert any("weight decay 0.0001" in ax.get_title() for ax in fig.axes)


def test_diverged_runs_are_left_out_with_a_warning(caplog):
    data = figure_inputs("fig1", ["Synthetic"])
    m = data.metrics.copy()
    bad = (m["loss"] == "bpr") & (m["weight_decay"] == 1e-4) & (m["seed"] == 246)
    m.loc[bad, ["diverged", "test_ndcg", "test_ndcg_popular"]] = [True, 50.0, 50.0]
    with caplog.at_level(logging.WARNING, logger="prism_repro.figures"):
        fig = ndcg_vs_weight_decay(FigureData(m, data.epochs, data.norms))
    assert "leaving out 1 diverged run" in caplog.text and m.loc[bad, "run"].iloc[0] in caplog.text
    for ax in fig.axes:
        for line in ax.lines:
            assert np.nanmax(line.get_ydata()) < 1.0


def test_a_panel_whose_runs_all_diverged_says_no_runs(caplog):
    data = figure_inputs("fig1", DATASETS)
    m = data.metrics.copy()
    m.loc[(m["loss"] == "directau") & (m["dataset"] == "Yelp2018"), "diverged"] = True
    fig = ndcg_vs_weight_decay(FigureData(m, data.epochs, data.norms))
    empty = [ax.get_title() for ax in fig.axes if any(t.get_text() == "no runs" for t in ax.texts)]
    assert empty == ["MF DirectAU - Yelp2018"]
    assert "leaving out 12 diverged run(s)" in caplog.text


def test_fig4_has_one_point_per_alpha_and_the_weight_decay_star():
    fig = ndcg_vs_epochs(figure_inputs("fig4", ["Synthetic"]))
    (ax,) = [a for a in fig.axes]
    markers = [line.get_marker() for line in ax.lines]
    assert markers.count("o") == len(ALPHAS)
    assert markers.count("*") == 1  # only the MF DirectAU xavier/full reference, not SSM or nlmf
    assert [t.get_text() for t in ax.texts] == ["wd 1e-06"]


def test_fig6_draws_dot_and_cosine_curves_per_weight_decay():
    data = figure_inputs("fig6", ["Synthetic"])
    fig = training_curves(data)
    (ax,) = fig.axes
    styles = [line.get_linestyle() for line in ax.lines]
    assert styles.count("-") == len(WDS) and styles.count("--") == len(WDS)
    # without cosine scores only the dot-product curves remain
    fig = training_curves(
        FigureData(data.metrics, data.epochs.assign(val_ndcg_cosine=np.nan), data.norms)
    )
    assert [line.get_linestyle() for line in fig.axes[0].lines] == ["-"] * len(WDS)


@pytest.mark.parametrize("name", sorted(set(FIGURES) - {"fig7"}))
def test_a_dataset_whose_runs_all_diverged_keeps_its_panels_saying_no_runs(name, tmp_path, caplog):
    data = figure_inputs(name, DATASETS)
    m = data.metrics.assign(diverged=data.metrics["dataset"] == "Yelp2018")
    with caplog.at_level(logging.WARNING, logger="prism_repro.figures"):
        fig = FIGURES[name](FigureData(m, data.epochs, data.norms))
    assert "diverged run(s)" in caplog.text
    silent = [ax.get_title() for ax in fig.axes if any(t.get_text() == "no runs" for t in ax.texts)]
    assert silent and all("Yelp2018" in t for t in silent)
    assert any("Gowalla" in ax.get_title() for ax in fig.axes)
    save(fig, tmp_path / "x.png", tmp_path / "x.pdf", dpi=60)
    assert_png(tmp_path / "x.png")


def test_fig9_points_choose_prisms_alpha_on_validation():
    points = debias_points(debias_frames(["Synthetic"]).metrics)
    assert list(points["method"]) == list(DEBIAS_METHODS)
    prism = points[points["method"] == "PRISM + DirectAU"].iloc[0]
    assert prism["setting"] == "mf_prism-a0.5"  # best validation, not best test (a0)
    assert prism["seeds"] == 3
    assert prism["ratio"] == pytest.approx(0.030 / 0.030)
    assert prism["ndcg"] == pytest.approx(0.120)
    assert prism["ndcg_std"] == pytest.approx(0.120 * 0.01)  # sample std of (0.99, 1, 1.01) x
    directau = points[points["method"] == "DirectAU"].iloc[0]
    assert directau["setting"] == "mf_directau-wd1e-06"
    assert directau["ratio"] == pytest.approx(0.3) and directau["ratio_std"] == 0


def test_fig9_ratio_skips_runs_without_popular_hits_and_diverged_runs():
    m = debias_frames(["Synthetic"]).metrics
    ipl = m["run"].str.startswith("mf_ipl")
    m.loc[ipl & (m["seed"] == 123), "test_ndcg_popular"] = 0.0
    m.loc[ipl & (m["seed"] == 246), ["diverged", "test_ndcg"]] = [True, 9.0]
    row = debias_points(m).set_index("method").loc["IPL"]
    assert row["seeds"] == 2 and row["ratio"] == pytest.approx(0.012 / 0.040)
    assert row["ndcg"] == pytest.approx(0.095 * (0.99 + 1.01) / 2)


def test_fig9_draws_one_point_per_method_with_prism_as_a_star():
    fig = debiasing_tradeoff(debias_frames(DATASETS))
    for ax in fig.axes:
        markers = [line.get_marker() for line in ax.lines if line.get_marker() not in ("_", "|")]
        assert sorted(markers) == sorted(DEBIAS_MARKERS.values())
    assert [ax.get_title() for ax in fig.axes] == DATASETS
    assert fig.axes[0].get_xlabel() == "unpopular / popular NDCG@20"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == list(DEBIAS_METHODS)


def test_fig9_claim_reproduced_only_when_prism_wins_both_axes_everywhere():
    data = debias_frames(DATASETS)
    row = debias_claim(data.metrics)
    assert (row["ours"], row["verdict"]) == (100.0, "reproduced")
    # on Yelp2018 IPL becomes fairer than PRISM + DirectAU: one dataset of two
    m = data.metrics.copy()
    m.loc[
        (m["dataset"] == "Yelp2018") & m["run"].str.startswith("mf_ipl"), "test_ndcg_unpopular"
    ] = 0.1
    row = debias_claim(m)
    assert (row["ours"], row["verdict"]) == (50.0, "not reproduced")
    # a more accurate method also breaks it
    m = data.metrics.copy()
    m.loc[m["run"].str.startswith("mf_macr"), "test_ndcg"] = 0.2
    assert debias_claim(m)["verdict"] == "not reproduced"
    # no Figure 9 runs: not run; other experiments' runs are not Figure 9's
    assert debias_claim(m.assign(experiment="fig1"))["verdict"] == "not run"
    assert debias_claim(pd.DataFrame(columns=m.columns))["verdict"] == "not run"
    table = claims_table(data.metrics, pd.DataFrame())
    assert table["claim"].str.contains("Figure 9").sum() == 1


def test_fig9_gives_each_variant_its_own_hollow_point_and_the_claim_reads_the_paper_variant():
    paper = debias_frames(["Synthetic"]).metrics
    other = paper[paper["loss"].isin(["resn", "ipl"])].assign(
        variant="official", run=lambda f: f["run"] + "_vofficial", test_ndcg_unpopular=0.2
    )
    both = pd.concat([paper.assign(variant="paper"), other], ignore_index=True)
    points = debias_points(both)
    assert len(points) == 6 + 2
    assert set(points[points["variant"] == "official"]["method"]) == {"ReSN", "IPL"}
    fig = debiasing_tradeoff(FigureData(both, pd.DataFrame(), pd.DataFrame()))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:6] == [f"{m} [paper]" for m in DEBIAS_METHODS]
    assert legend[6:] == ["ReSN [official]", "IPL [official]"]
    hollow = [line for line in fig.axes[0].lines if line.get_markerfacecolor() == "none"]
    assert len(hollow) == 2
    # the official-form points are fairer than PRISM + DirectAU, but the claim reads the paper's
    assert debias_claim(both)["verdict"] == "reproduced"
