"""Figures from aggregated metrics (parquet in, PNG + PDF out); no training code here."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from prism_repro import (
    registry,  # noqa: E402
    theory,  # noqa: E402
)
from prism_repro.io import atomic_path  # noqa: E402
from prism_repro.picks import (  # noqa: E402
    DEBIAS_METHODS,
    PRISM_DIRECTAU,
    debias_points,
    first_seed,
    pick_weight_decay,
    spearman_rho,
)
from prism_repro.runspec import DEFAULT_VARIANT, fmt_num, setting_columns  # noqa: E402

log = logging.getLogger("prism_repro.figures")
STRATA_LABELS = {
    "ndcg": "overall",
    "ndcg_popular": "popular",
    "ndcg_neutral": "neutral",
    "ndcg_unpopular": "unpopular",
}
LOSS_LABELS = {name: e.label for name, e in registry.LOSSES.items()}
BACKBONE_LABELS = {name: e.label for name, e in registry.BACKBONES.items()}
LOSS_ORDER = tuple(registry.LOSSES)
BACKBONE_ORDER = tuple(registry.BACKBONES)
DATASET_ORDER = ("MovieLens1M", "Gowalla", "Yelp2018", "AmazonBook")
STRATA_NAMES = {0: "popular", 1: "neutral", 2: "unpopular"}  # norms' item stratum -> group
STRATA_COLORS = {
    "overall": "0.15",
    **{name: g.color for name, g in registry.POPULARITY_GROUPS.items()},
}  # colour-blind safe


def drop_diverged(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    bad = frame[frame["diverged"].astype(bool)]
    if len(bad):
        log.warning("%s: leaving out %d diverged run(s): %s", what, len(bad), ", ".join(bad["run"]))
    return frame[~frame["diverged"].astype(bool)]


def save(fig: plt.Figure, png: Path, pdf: Path, dpi: int) -> None:
    for path, kwargs in ((png, {"dpi": dpi}), (pdf, {})):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], bbox_inches="tight", **kwargs)
    plt.close(fig)


@dataclass
class FigureData:
    metrics: pd.DataFrame  # one row per run (only the final runs: selected settings x all seeds)
    epochs: pd.DataFrame  # one row per (run, epoch)
    norms: pd.DataFrame  # one row per (run, node, id); node in {"user","item"}
    theory: pd.DataFrame | None = None  # simulate's rows (graph, scenario, batch fraction, bin)


METRICS_COLUMNS = [
    "experiment",
    "dataset",
    "run",
    *setting_columns(),
    "best_epoch",
    "epochs_run",
    "diverged",
    "test_ndcg",
    "test_ndcg_popular",
    "test_ndcg_neutral",
    "test_ndcg_unpopular",
    "k",
]
EPOCHS_COLUMNS = ["experiment", "dataset", "run", "epoch", "val_ndcg", "val_ndcg_cosine"]
NORMS_COLUMNS = ["experiment", "dataset", "run", "node", "id", "degree", "norm", "stratum"]


# ---------------------------------------------------------------------------------------------
# shared pieces


def _columns(frame: pd.DataFrame | None, columns: list[str]) -> pd.DataFrame:
    """``frame`` with any missing column added (empty), so an absent input reads as "no runs"."""
    frame = pd.DataFrame() if frame is None else frame
    missing = [c for c in columns if c not in frame]
    if not missing or len(frame):
        return frame
    return frame.reindex(columns=list(frame.columns) + missing)


def _inputs(data: FigureData) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    metrics = _columns(data.metrics, METRICS_COLUMNS)
    metrics = metrics.astype({"diverged": bool}) if metrics.empty else metrics
    return metrics, _columns(data.epochs, EPOCHS_COLUMNS), _columns(data.norms, NORMS_COLUMNS)


def _ordered(values, order) -> list:
    """Distinct ``values``, those named in ``order`` first in that order, the rest as they come."""
    seen = list(dict.fromkeys(values))
    return sorted(seen, key=lambda v: (order.index(v) if v in order else len(order), seen.index(v)))


def _datasets(*frames: pd.DataFrame) -> list[str]:
    return _ordered([d for f in frames for d in f["dataset"]], DATASET_ORDER)


def _k(metrics: pd.DataFrame) -> int:
    return int(metrics["k"].iloc[0]) if len(metrics) and "k" in metrics else 20


def _setting_label(backbone: str, loss: str) -> str:
    return f"{BACKBONE_LABELS.get(backbone, backbone)} {LOSS_LABELS.get(loss, loss)}"


def _no_runs(ax: plt.Axes, text: str = "no runs") -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="0.45",
        fontsize="large",
    )


def _run_keys(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    return [c for c in ("experiment", "dataset", "run") if c in a and c in b]


def _strata_legend(fig: plt.Figure, title: str = "items", lines: bool = True) -> None:
    """One legend right of the panels: the NDCG lines' groups, or (``lines=False``) the scatter's."""
    groups = STRATA_LABELS.values() if lines else STRATA_NAMES.values()
    handles = [
        Line2D([], [], color=STRATA_COLORS[g], marker="o", ms=4, ls="-" if lines else "", label=g)
        for g in groups
    ]
    fig.legend(
        handles=handles, title=title, loc="upper left", bbox_to_anchor=(1.0, 0.98), frameon=False
    )


def _strata_panel(ax: plt.Axes, frame: pd.DataFrame, x: str, order: list) -> None:
    """Test NDCG overall and per popularity group against the categories ``order`` of column ``x``:
    mean over seeds with a +-1 std band (none for a single seed)."""
    ax.set_xticks(
        range(len(order)), [fmt_num(v) for v in order], rotation=30 if len(order) > 5 else 0
    )
    ax.set_xlim(-0.3, max(len(order) - 0.7, 0.3))
    if frame.empty:
        _no_runs(ax)
        return
    pos = {v: i for i, v in enumerate(order)}
    for col, label in STRATA_LABELS.items():
        g = frame.groupby(x)[f"test_{col}"].agg(["mean", "std"])
        g = g.loc[[v for v in order if v in g.index]].dropna(subset=["mean"])
        xs = [pos[v] for v in g.index]
        sd = g["std"].fillna(0.0)
        ax.plot(xs, g["mean"], marker="o", ms=4, color=STRATA_COLORS[label], label=label)
        ax.fill_between(
            xs, g["mean"] - sd, g["mean"] + sd, color=STRATA_COLORS[label], alpha=0.2, lw=0
        )


def _magnitude_panel(ax: plt.Axes, items: pd.DataFrame, title: str) -> float:
    """Item embedding norm against train degree (log x), coloured by popularity group; the
    Spearman rho over all items of the run goes in the title. Returns the rho."""
    if items.empty:
        ax.set_title(title)
        _no_runs(ax)
        return float("nan")
    rho = spearman_rho(items["degree"], items["norm"])
    shown = items[items["degree"] > 0]  # a log axis cannot show degree 0 (rho still counts them)
    for stratum in (2, 1, 0):  # popular items drawn last, on top of the many unpopular ones
        label = STRATA_NAMES[stratum]
        part = shown[shown["stratum"] == stratum]
        ax.scatter(
            part["degree"],
            part["norm"],
            s=5,
            alpha=0.5,
            lw=0,
            color=STRATA_COLORS[label],
            rasterized=True,
        )
    ax.set_xscale("log")
    ax.set_title(f"{title}\nSpearman ρ = {rho:.2f}")
    ax.set_xlabel("item train degree (log)")
    return rho


def _item_norms(norms: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    items = norms[norms["node"] == "item"]
    keys = _run_keys(items, runs)
    return items.merge(runs[keys], on=keys)


def _ndcg_row(
    axes,
    metrics: pd.DataFrame,
    datasets: list[str],
    x: str,
    order: list,
    xlabel: str,
    prefix: str,
    k: int,
) -> None:
    for c, dataset in enumerate(datasets):
        ax = axes[c]
        _strata_panel(ax, metrics[metrics["dataset"] == dataset], x, order)
        ax.set_title(f"{prefix} - {dataset}" if prefix else dataset)
        ax.set_ylabel(f"test NDCG@{k}" if c == 0 else "")
        ax.set_xlabel(xlabel)


def _ndcg_grid(
    metrics: pd.DataFrame, what: str, x: str = "weight_decay", xlabel: str = "weight decay"
) -> plt.Figure:
    """Figure 1 layout: test NDCG@k overall and per popularity group against ``x``.

    Rows are (backbone, loss) settings, columns datasets; lines are means over seeds with +-1 std
    bands. Diverged runs are left out (logged); a panel without runs says so.
    """
    everything = (
        metrics  # panels (and x ticks) come from every run, so one whose runs all diverged says so
    )
    metrics = drop_diverged(metrics, what)
    k = _k(everything)
    order = sorted(everything[x].unique())
    datasets = _datasets(everything) or [""]
    if "variant" not in everything:
        everything = everything.assign(variant=DEFAULT_VARIANT)
        metrics = metrics.assign(variant=DEFAULT_VARIANT)
    variants = list(dict.fromkeys(everything["variant"].fillna(DEFAULT_VARIANT)))
    cols = ["backbone", "loss", "variant"]
    triples = everything[cols].fillna(DEFAULT_VARIANT).drop_duplicates().itertuples(index=False)
    settings = sorted(
        triples,
        key=lambda p: (
            BACKBONE_ORDER.index(p.backbone) if p.backbone in BACKBONE_ORDER else 99,
            LOSS_ORDER.index(p.loss) if p.loss in LOSS_ORDER else 99,
            variants.index(p.variant),
        ),
    )
    rows = [(s.backbone, s.loss, s.variant) for s in settings] or [(None, None, None)]
    fig, axes = plt.subplots(
        len(rows),
        len(datasets),
        figsize=(3.4 * len(datasets), 2.8 * len(rows)),
        squeeze=False,
        sharex=True,
    )
    for r, (backbone, loss, variant) in enumerate(rows):
        part = metrics[
            (metrics["backbone"] == backbone)
            & (metrics["loss"] == loss)
            & (metrics["variant"].fillna(DEFAULT_VARIANT) == variant)
        ]
        prefix = _setting_label(backbone, loss) if backbone is not None else ""
        if prefix and len(variants) > 1:  # runs of several variants: one row each
            prefix += f" [{variant}]"
        _ndcg_row(
            axes[r], part, datasets, x, order, xlabel if r == len(rows) - 1 else "", prefix, k
        )
    fig.tight_layout()
    _strata_legend(fig)
    return fig


# ---------------------------------------------------------------------------------------------
# the paper's figures


def ndcg_vs_weight_decay(data: FigureData) -> plt.Figure:
    """Figure 1 (and 8, 10, 11): test NDCG@k overall and per popularity group against weight decay;
    rows (backbone, loss), columns datasets. Uses ``data.metrics``."""
    return _ndcg_grid(_inputs(data)[0], "ndcg_vs_weight_decay")


def lightgcn_ndcg_vs_weight_decay(data: FigureData) -> plt.Figure:
    """Figure 8: as Figure 1 for LightGCN with DirectAU (experiment fig8)."""
    return _ndcg_grid(_inputs(data)[0], "fig8")


def other_losses_ndcg_vs_weight_decay(data: FigureData) -> plt.Figure:
    """Figure 10: as Figure 1 for MF with SSM and MAWU (experiment fig10)."""
    return _ndcg_grid(_inputs(data)[0], "fig10")


def nonlinear_ndcg_vs_weight_decay(data: FigureData) -> plt.Figure:
    """Figure 11: as Figure 1 for non-linear MF with SSM, DirectAU and MAWU (experiment fig11)."""
    return _ndcg_grid(_inputs(data)[0], "fig11")


def magnitude_vs_degree(data: FigureData, weight_decay: float = 1e-6) -> plt.Figure:
    """Figure 2: item embedding magnitude against train degree (log x) for each loss, (a) with weight
    decay ``weight_decay`` (full decay) and (b) without; Spearman rho in each title; one run (the
    lowest seed) per setting. Uses ``data.metrics`` (fig1 runs) and ``data.norms``."""
    metrics, _, norms = _inputs(data)
    metrics = metrics[metrics["decay"] != "batched"]
    m = drop_diverged(metrics, "fig2")
    wd = pick_weight_decay(metrics["weight_decay"], weight_decay, "fig2")
    wd = weight_decay if wd is None else wd
    losses = _ordered(metrics["loss"], LOSS_ORDER) or [None]
    datasets = _datasets(metrics) or [""]
    conditions = [
        ("a", f"weight decay {fmt_num(wd)}", np.isclose(m["weight_decay"], wd, rtol=1e-6, atol=0)),
        ("b", "no weight decay", m["weight_decay"] == 0),
    ]
    rows = [(tag, text, mask, loss) for tag, text, mask in conditions for loss in losses]
    fig, axes = plt.subplots(
        len(rows), len(datasets), figsize=(3.4 * len(datasets), 2.9 * len(rows)), squeeze=False
    )
    for r, (tag, text, mask, loss) in enumerate(rows):
        runs = first_seed(m[mask & (m["loss"] == loss)], ["dataset", "backbone", "loss"])
        items = _item_norms(norms, runs)
        for c, dataset in enumerate(datasets):
            ax = axes[r][c]
            label = LOSS_LABELS.get(loss, loss) if loss else ""
            _magnitude_panel(
                ax, items[items["dataset"] == dataset], f"({tag}) {label}, {text} - {dataset}"
            )
            ax.set_ylabel("item embedding norm" if c == 0 else "")
            if r != len(rows) - 1:
                ax.set_xlabel("")
    fig.tight_layout()
    _strata_legend(fig, lines=False)
    return fig


def batched_weight_decay(data: FigureData, weight_decay: float = 1e-6) -> plt.Figure:
    """Figure 3: top row, test NDCG@k overall and per popularity group against *batched* weight
    decay (0 = no decay), as Figure 1; bottom row, item magnitude against degree at batched decay
    ``weight_decay`` (lowest seed), as Figure 2(b). Uses ``data.metrics`` (fig3 runs), ``data.norms``."""
    metrics, _, norms = _inputs(data)
    m = drop_diverged(metrics, "fig3")
    k = _k(metrics)
    datasets = _datasets(metrics) or [""]
    order = sorted(metrics["weight_decay"].unique())
    fig, axes = plt.subplots(2, len(datasets), figsize=(3.4 * len(datasets), 5.9), squeeze=False)
    settings = m[["backbone", "loss"]].drop_duplicates()
    prefix = _setting_label(*settings.iloc[0]) if len(settings) == 1 else ""
    _ndcg_row(
        axes[0], m, datasets, "weight_decay", order, "batched weight decay (0 = none)", prefix, k
    )
    batched = m[m["decay"] == "batched"]
    wd = pick_weight_decay(
        metrics.loc[metrics["decay"] == "batched", "weight_decay"], weight_decay, "fig3"
    )
    wd = weight_decay if wd is None else wd
    runs = first_seed(
        batched[np.isclose(batched["weight_decay"], wd, rtol=1e-6, atol=0)],
        ["dataset", "backbone", "loss"],
    )
    items = _item_norms(norms, runs)
    for c, dataset in enumerate(datasets):
        ax = axes[1][c]
        _magnitude_panel(
            ax,
            items[items["dataset"] == dataset],
            f"batched weight decay {fmt_num(wd)} - {dataset}",
        )
        ax.set_ylabel("item embedding norm" if c == 0 else "")
    fig.tight_layout()
    _strata_legend(fig)
    return fig


def _prism_sweep(metrics: pd.DataFrame) -> pd.DataFrame:
    exp = metrics["experiment"] if "experiment" in metrics else pd.Series("", index=metrics.index)
    return metrics[(exp != "table1_wd") & (metrics["init"] == "prism")]


def ndcg_vs_epochs(data: FigureData) -> plt.Figure:
    """Figure 4: test NDCG@k against the mean number of epochs trained until early stopping
    (``epochs_run``: the cost of training), one point per PRISM alpha (error bars: std over seeds), plus
    the tuned weight-decay model (table1_wd rows with MF, DirectAU, Xavier init, full decay) as a
    star. Uses ``data.metrics`` (fig4 + table1_wd runs)."""
    metrics = _inputs(data)[0]
    exp = metrics["experiment"] if "experiment" in metrics else pd.Series("", index=metrics.index)
    ref_all = metrics[
        (exp == "table1_wd")
        & (metrics["backbone"] == "mf")
        & (metrics["loss"] == "directau")
        & (metrics["init"] == "xavier")
        # tuning may pick weight decay 0, stored as decay mode none: the reference is still drawn
        & metrics["decay"].isin(["full", "none"])
    ]
    sweep_all = _prism_sweep(metrics)
    sweep, ref = (
        drop_diverged(sweep_all, "fig4 (PRISM)"),
        drop_diverged(ref_all, "fig4 (weight decay reference)"),
    )
    k = _k(metrics)
    datasets = (_datasets(sweep_all) if len(sweep_all) else _datasets(ref_all)) or [""]
    alphas = sorted(sweep_all["alpha"].unique())
    colors = dict(zip(alphas, sns.color_palette("viridis", max(len(alphas), 1))))
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets), 3.0), squeeze=False)
    for c, dataset in enumerate(datasets):
        ax = axes[0][c]
        ax.set_title(dataset)
        ax.set_xlabel("epochs until early stopping")
        ax.set_ylabel(f"test NDCG@{k}" if c == 0 else "")
        part, ref_part = sweep[sweep["dataset"] == dataset], ref[ref["dataset"] == dataset]
        if part.empty and ref_part.empty:
            _no_runs(ax)
            continue
        for alpha, g in part.groupby("alpha"):
            ax.errorbar(
                g["epochs_run"].mean(),
                g["test_ndcg"].mean(),
                xerr=np.nan_to_num(g["epochs_run"].std()),
                yerr=np.nan_to_num(g["test_ndcg"].std()),
                fmt="o",
                ms=6,
                capsize=2,
                color=colors[alpha],
            )
        for wd, g in ref_part.groupby("weight_decay"):
            x, y = g["epochs_run"].mean(), g["test_ndcg"].mean()
            ax.errorbar(
                x,
                y,
                xerr=np.nan_to_num(g["epochs_run"].std()),
                yerr=np.nan_to_num(g["test_ndcg"].std()),
                fmt="*",
                ms=12,
                capsize=2,
                color="black",
                zorder=3,
            )
            ax.annotate(
                f"wd {fmt_num(wd)}",
                (x, y),
                xytext=(6, -10),
                textcoords="offset points",
                fontsize="small",
            )
        ax.margins(x=0.15, y=0.15)
    fig.tight_layout()
    handles = [
        Line2D([], [], ls="", marker="o", color=colors[a], label=f"PRISM α = {fmt_num(a)}")
        for a in alphas
    ]
    handles.append(
        Line2D(
            [],
            [],
            ls="",
            marker="*",
            ms=10,
            color="black",
            label="tuned weight decay\n(Xavier init)",
        )
    )
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.98), frameon=False)
    return fig


def ndcg_vs_alpha(data: FigureData) -> plt.Figure:
    """Figure 5: test NDCG@k overall and per popularity group against PRISM's alpha (Figure 1
    layout). Uses the PRISM rows of ``data.metrics`` (fig4 runs; table1_wd rows are ignored)."""
    return _ndcg_grid(_prism_sweep(_inputs(data)[0]), "fig5", x="alpha", xlabel="PRISM α")


def training_curves(data: FigureData) -> plt.Figure:
    """Figure 6: validation NDCG@k per epoch scored with the dot product (solid) and with cosine
    similarity (dashed), colour = weight decay, one panel per dataset; mean over the seeds still
    training at that epoch. Uses ``data.metrics`` (fig6 runs: weight decay, divergence) and
    ``data.epochs`` (epochs without an evaluation, NaN, are skipped)."""
    metrics, epochs, _ = _inputs(data)
    m = drop_diverged(metrics, "fig6")
    k = _k(metrics)
    keys = _run_keys(epochs, m)
    ep = epochs.merge(m[keys + ["weight_decay"]], on=keys)
    long = ep.melt(
        id_vars=["dataset", "weight_decay", "run", "epoch"],
        value_vars=["val_ndcg", "val_ndcg_cosine"],
        var_name="score",
        value_name="ndcg",
    ).dropna(subset=["ndcg"])
    curves = long.groupby(["dataset", "weight_decay", "score", "epoch"])["ndcg"].mean()
    datasets = _datasets(metrics) or [""]
    decays = sorted(metrics["weight_decay"].unique())
    colors = dict(zip(decays, sns.color_palette("viridis", max(len(decays), 1))))
    styles = {"val_ndcg": ("-", "dot product"), "val_ndcg_cosine": ("--", "cosine")}
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets), 3.0), squeeze=False)
    for c, dataset in enumerate(datasets):
        ax = axes[0][c]
        ax.set_title(dataset)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation NDCG@{k}" if c == 0 else "")
        if dataset not in curves.index.get_level_values("dataset"):
            _no_runs(ax)
            continue
        for (wd, score), curve in curves.loc[dataset].groupby(level=["weight_decay", "score"]):
            curve = curve.droplevel(["weight_decay", "score"])
            ax.plot(curve.index, curve.to_numpy(), ls=styles[score][0], color=colors[wd], lw=1.3)
    fig.tight_layout()
    handles = [
        Line2D([], [], color=colors[wd], label=f"weight decay {fmt_num(wd)}") for wd in decays
    ]
    handles += [Line2D([], [], color="0.2", ls=ls, label=label) for ls, label in styles.values()]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.98), frameon=False)
    return fig


FIG7_GRAPH = "powerlaw"  # the simulation Figure 7 shows (others feed the claims table only)
FIG7_SCENARIO_LABELS = {
    "sgd": "SGD, one pair per item (theorem)",
    "sgd_all_pairs": "SGD, all pairs",
    "adam": "Adam, all pairs",
    "sgd_negatives": "SGD + uniform negatives (Cor. 2)",
    "sgd_batched": "SGD, batched decay (Cor. 1)",
    "sgd_replacement": "SGD, draws with replacement",
}


def _fig7_simulation(theory_frame: pd.DataFrame | None) -> pd.DataFrame:
    frame = pd.DataFrame() if theory_frame is None else theory_frame
    if frame.empty or "graph" not in frame:
        return pd.DataFrame()
    graphs = list(dict.fromkeys(frame["graph"]))
    graph = FIG7_GRAPH if FIG7_GRAPH in graphs else graphs[0]
    return frame[frame["graph"] == graph]


def _log_edges(values: np.ndarray) -> np.ndarray:
    """Cell edges around log-spaced centres: geometric midpoints, half a step beyond the ends."""
    v = np.log10(np.asarray(values, float))
    if len(v) == 1:
        return 10.0 ** np.array([v[0] - 0.25, v[0] + 0.25])
    mid = (v[1:] + v[:-1]) / 2
    return 10.0 ** np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def _simulated_map(sgd: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(degree edges, fraction edges, drift matrix fractions x bins) of the SGD rows."""
    bins = sgd.drop_duplicates("bin").sort_values("bin")
    x = np.concatenate([bins["degree_lo"].to_numpy(float), bins["degree_hi"].to_numpy(float)[-1:]])
    fractions = np.sort(sgd["batch_fraction"].unique())
    z = (
        sgd.pivot_table(index="batch_fraction", columns="bin", values="drift_sim")
        .reindex(index=fractions, columns=bins["bin"])
        .to_numpy()
    )
    return x, _log_edges(fractions), z


def _fig7_norm(values: list[np.ndarray]):
    """One linear colour scale for both maps, symmetric about 0 when they change sign (so a small
    decay-only change looks small, not as strong as the largest growth)."""
    finite = np.concatenate([v[np.isfinite(v)].ravel() for v in values])
    lo, hi = float(finite.min()), float(finite.max())
    if lo < 0 < hi:
        top = max(-lo, hi)
        return Normalize(-top, top), "RdBu_r"
    return Normalize(lo, hi), "viridis"


def _fraction_colors(fractions) -> dict:
    return dict(zip(fractions, sns.color_palette("viridis", max(len(fractions), 1))))


def _nearest(values, wanted: float) -> float:
    values = np.asarray(sorted(set(values)), float)
    return float(values[np.argmin(np.abs(np.log10(values) - np.log10(wanted)))])


def magnitude_change_heatmap(data: FigureData | None = None) -> plt.Figure:
    """Figure 7: Theorem 3.1's expected one-step change of an item's squared magnitude against the
    Monte-Carlo simulation (``prism_repro.simulate``; ``data.theory``, graph ``powerlaw``).

    (a) the paper's map: Theorem 3.1 with Observation 1's P(i in B), ||i||^2 = 1 and cos^2(u, i) =
    0.9 held fixed, at the simulation's eta and lambda (``prism_repro.theory`` says why these show
    the described picture); (b) the simulated mean change per item-degree bin and batch fraction
    (SGD, one pair per item per batch: the theorem's setting), on (a)'s colour scale; (c) predicted
    (lines: the theorem evaluated on the simulated state) against simulated (points, +-2 standard
    errors) change per degree bin; (d) their relative error; (e) simulated / predicted change in
    every scenario at the batch fraction nearest 0.03 (Adam, all pairs: where the theorem breaks);
    (f) Observation 1 (lines) against the simulated inclusion probability (points).
    Without a simulation only (a) is drawn and the other panels say so.
    """
    sim = _fig7_simulation(data.theory if data is not None else None)
    sgd = sim[sim["scenario"] == "sgd"] if len(sim) else sim
    if len(sim):
        lr, wd = float(sim["lr"].iloc[0]), float(sim["weight_decay"].iloc[0])
        cos_sq = float(sim["init_cos_sq"].iloc[0])
    else:
        lr, wd, cos_sq = theory.FIG7_LR, theory.FIG7_WEIGHT_DECAY, theory.FIG7_COS_SQ
    if len(sgd):
        d_lo, d_hi = 1.0, float(sgd["degree_hi"].max())
        f_edges = _log_edges(np.sort(sgd["batch_fraction"].unique()))
        f_lo, f_hi = float(f_edges[0]), float(min(f_edges[-1], 1.0))
    else:
        d_lo, d_hi, f_lo, f_hi = 1.0, 1e3, 1e-5, 1.0
    degree = np.logspace(np.log10(d_lo), np.log10(d_hi), 121)
    fraction = np.logspace(np.log10(f_lo), np.log10(f_hi), 91)
    z = theory.expected_magnitude_change(
        degree[None, :], fraction[:, None], lr, wd, theory.FIG7_SQ_NORM, cos_sq
    )
    maps = [z]
    if len(sgd):
        sx, sy, sz = _simulated_map(sgd)
        maps.append(sz)
    top = max(float(np.nanmax(np.abs(m))) for m in maps)
    scale = int(np.floor(np.log10(top))) if top > 0 else 0
    norm, cmap = _fig7_norm([m / 10.0**scale for m in maps])

    fig, axes = plt.subplots(2, 3, figsize=(16.5, 9.0), layout="constrained")
    (a, b, c), (d, e, f) = axes
    settings = f"η = {fmt_num(lr)}, λ = {fmt_num(wd)}"
    mesh = a.pcolormesh(
        degree, fraction, z / 10.0**scale, shading="gouraud", cmap=cmap, norm=norm, rasterized=True
    )
    a.set_title(
        f"(a) Theorem 3.1 (paper's Figure 7): {settings},\n"
        f"‖i‖² = 1, 'dot product term' cos²(u, i) = {fmt_num(cos_sq)}",
        fontsize="medium",
    )
    b.set_title(
        "(b) simulated (SGD, one pair per item per batch)\nmean change per degree bin",
        fontsize="medium",
    )
    for ax in (a, b):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(d_lo, d_hi)
        ax.set_ylim(f_lo, f_hi)
        for y in (0.01, 0.05):
            ax.axhline(y, color="0.2", ls=":", lw=1.0)
        ax.set_xlabel("item degree $d_i$ (log)")
    a.set_ylabel("batch size / dataset size $|B|/|E|$ (log)")
    bar = fig.colorbar(mesh, ax=b)
    bar.set_label(f"E[Δ‖i‖²] per step (× $10^{{{scale}}}$)")
    c.set_title("(c) predicted (lines) vs simulated (points), SGD", fontsize="medium")
    d.set_title(
        "(d) relative error (simulated - predicted) / |predicted|\n"
        "(bins with >= 20 inclusion events and |predicted| >= 5 SE)",
        fontsize="medium",
    )
    e.set_title("(e) simulated / predicted change by scenario", fontsize="medium")
    f.set_title("(f) Observation 1 (lines) vs simulated P(i in B) (points)", fontsize="medium")
    if sgd.empty:
        b.set_facecolor("0.95")
        for ax in (b, c, d, e, f):
            _no_runs(ax, "no simulation")
        return fig
    b.pcolormesh(sx, sy, sz / 10.0**scale, shading="flat", cmap=cmap, norm=norm, rasterized=True)
    fractions = sorted(sgd["batch_fraction"].unique())
    colors = _fraction_colors(fractions)
    _fig7_lines(c, d, f, sgd, colors)
    _fig7_scenarios(e, sim)
    handles = [
        Line2D([], [], color=colors[v], marker="o", ms=4, label=f"{v:.2g}") for v in fractions
    ]
    fig.legend(
        handles=handles,
        title="|B|/|E|",
        loc="outside lower center",
        ncol=len(handles),
        frameon=False,
    )
    return fig


def _fig7_lines(c: plt.Axes, d: plt.Axes, f: plt.Axes, sgd: pd.DataFrame, colors: dict) -> None:
    """Panels (c), (d) and (f): per degree bin, one line per batch fraction."""
    linthresh = float(np.abs(sgd["decay_pred"]).max()) or 1e-12
    worst_z, worst_p = 0.0, 0.0
    for frac, g in sgd.groupby("batch_fraction"):
        g = g.sort_values("degree_mean")
        col = colors[frac]
        x = g["degree_mean"]
        c.plot(x, g["drift_pred"], color=col, lw=1.2)
        c.errorbar(x, g["drift_sim"], yerr=2 * g["drift_se"], fmt="o", ms=3.5, color=col, lw=0.8)
        # relative error where it means something: enough inclusion events, prediction resolved
        resolved = g[g["resolved"] & (g["drift_pred"].abs() >= 5 * g["drift_se"])]
        rel = 100 * (resolved["drift_sim"] - resolved["drift_pred"]) / resolved["drift_pred"].abs()
        err = 200 * resolved["drift_se"] / resolved["drift_pred"].abs()
        d.errorbar(resolved["degree_mean"], rel, yerr=err, fmt="o-", ms=3.5, lw=0.8, color=col)
        f.plot(x, g["p_theory"], color=col, lw=1.2)
        f.plot(x, g["p_sim"], "o", ms=3.5, color=col)
        z_bins = g[g["resolved"]]["drift_z"].abs()
        worst_z = max(worst_z, float(np.nanmax(z_bins, initial=0.0)))
        worst_p = max(worst_p, float(np.nanmax(np.abs(g["p_z"]), initial=0.0)))
    c.set_yscale("symlog", linthresh=linthresh)
    c.set_ylabel("E[Δ‖i‖²] per step")
    d.axhline(0, color="0.3", lw=0.8)
    d.set_ylabel("relative error (%), bars ±2 SE")
    d.text(
        0.02,
        0.97,
        f"max |z| = {worst_z:.2f} over bins with >= 20 inclusion events",
        transform=d.transAxes,
        va="top",
        fontsize="small",
    )
    f.set_ylabel("P(i in B)")
    f.text(
        0.02,
        0.9,
        f"max |z| = {worst_p:.2f} (exact binomial test)",
        transform=f.transAxes,
        ha="left",
        va="top",
        fontsize="small",
    )
    for ax in (c, d, f):
        ax.set_xscale("log")
        ax.set_xlabel("item degree (bin mean, log)")


def _fig7_scenarios(e: plt.Axes, sim: pd.DataFrame) -> None:
    """Panel (e): simulated / predicted change per degree bin for every scenario, at the batch
    fraction nearest 0.03; the legend gives each scenario's median ratio."""
    frac = _nearest(sim["batch_fraction"], 0.03)
    part = sim[np.isclose(sim["batch_fraction"], frac)]
    palette = dict(zip(FIG7_SCENARIO_LABELS, sns.color_palette("colorblind", 6)))
    for scenario, g in part.groupby("scenario", sort=False):
        g = g.sort_values("degree_mean")
        ratio = g["drift_sim"] / g["drift_pred"]
        label = f"{FIG7_SCENARIO_LABELS.get(scenario, scenario)}: median {np.nanmedian(ratio):.3g}"
        e.plot(
            g["degree_mean"], ratio, "o-", ms=3.5, lw=1, label=label, color=palette.get(scenario)
        )
    e.axhline(1, color="0.3", lw=0.8, ls="--")
    e.set_xscale("log")
    e.set_yscale("symlog", linthresh=1)
    e.set_xlabel("item degree (bin mean, log)")
    e.set_ylabel(f"simulated / predicted at |B|/|E| = {frac:.3g}")
    e.legend(fontsize="x-small", loc="best", frameon=False)


# Figure 9: a marker per method; colours are the registry's (loss, or PRISM's init)
DEBIAS_MARKERS = {
    "BPR": "o",
    "DirectAU": "s",
    "PRISM + DirectAU": "*",
    "ReSN": "^",
    "IPL": "v",
    "MACR": "D",
}


def _debias_color(method: str) -> str:
    if method == PRISM_DIRECTAU:
        return registry.INITS["prism"].color
    by_label = {entry.label: entry.color for entry in registry.LOSSES.values()}
    return by_label.get(method, "black")


def debiasing_tradeoff(data: FigureData) -> plt.Figure:
    """Figure 9: unpopular/popular test NDCG@k ratio (x, higher = fairer) against overall test
    NDCG@k (y), one point per method and dataset (mean over seeds, error bars +-1 std): BPR,
    DirectAU, PRISM + DirectAU, ReSN, IPL and MACR. Where a method has several settings (PRISM's
    alpha, weight decay) the one with the best validation NDCG is shown
    (:func:`prism_repro.picks.debias_points`). Uses ``data.metrics``."""
    metrics = _inputs(data)[0]
    points = debias_points(drop_diverged(metrics, "fig9"))
    k = _k(metrics)
    datasets = _datasets(metrics) or [""]
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets), 3.2), squeeze=False)
    for c, dataset in enumerate(datasets):
        ax = axes[0][c]
        ax.set_title(dataset)
        ax.set_xlabel(f"unpopular / popular NDCG@{k}")
        ax.set_ylabel(f"test NDCG@{k}" if c == 0 else "")
        part = points[points["dataset"] == dataset]
        if part.empty:
            _no_runs(ax)
            continue
        for row in part.itertuples(index=False):
            marker, color = DEBIAS_MARKERS.get(row.method, "x"), _debias_color(row.method)
            ax.errorbar(
                row.ratio,
                row.ndcg,
                xerr=np.nan_to_num(row.ratio_std),
                yerr=np.nan_to_num(row.ndcg_std),
                fmt=marker,
                ms=11 if marker == "*" else 6,
                capsize=2,
                color=color,
                # other variants' points hollow, the default variant's filled
                mfc=color if row.variant == DEFAULT_VARIANT else "none",
                zorder=3 if marker == "*" else 2,
            )
        ax.margins(x=0.2, y=0.2)
    fig.tight_layout()
    shown = list(dict.fromkeys(zip(points["method"], points["variant"])))
    shown = shown or [(m, DEFAULT_VARIANT) for m in DEBIAS_METHODS]
    several = len({v for _, v in shown}) > 1
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker=DEBIAS_MARKERS[m],
            color=_debias_color(m),
            mfc=_debias_color(m) if v == DEFAULT_VARIANT else "none",
            ms=7,
            label=f"{m} [{v}]" if several else m,
        )
        for m, v in shown
    ]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.98), frameon=False)
    return fig


FIGURES = {
    "fig1": ndcg_vs_weight_decay,
    "fig2": magnitude_vs_degree,
    "fig3": batched_weight_decay,
    "fig4": ndcg_vs_epochs,
    "fig5": ndcg_vs_alpha,
    "fig6": training_curves,
    "fig7": magnitude_change_heatmap,
    "fig8": lightgcn_ndcg_vs_weight_decay,
    "fig9": debiasing_tradeoff,
    "fig10": other_losses_ndcg_vs_weight_decay,
    "fig11": nonlinear_ndcg_vs_weight_decay,
}


def _read(paths: list[Path]) -> pd.DataFrame:
    return (
        pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
        if paths
        else pd.DataFrame()
    )


def _command(args: argparse.Namespace) -> None:
    sns.set_theme(style=args.style, context=args.context)
    data = FigureData(
        metrics=_read(args.metrics),
        epochs=_read(args.epochs),
        norms=_read(args.norms),
        theory=_read(args.theory),
    )
    save(FIGURES[args.figure](data), args.out_png, args.out_pdf, args.dpi)


def register(sub) -> None:
    p = sub.add_parser(
        "figure", help="draw one of the paper's figures from aggregated experiment tables"
    )
    p.add_argument("figure", choices=sorted(FIGURES))
    p.add_argument("--metrics", type=Path, nargs="*", default=[])
    p.add_argument("--epochs", type=Path, nargs="*", default=[])
    p.add_argument("--norms", type=Path, nargs="*", default=[])
    p.add_argument("--theory", type=Path, nargs="*", default=[], help="simulate's parquet (fig7)")
    p.add_argument("--out-png", type=Path, required=True)
    p.add_argument("--out-pdf", type=Path, required=True)
    p.add_argument("--style", default="whitegrid")
    p.add_argument("--context", default="paper")
    p.add_argument("--dpi", type=int, default=150)
    p.set_defaults(func=_command)
