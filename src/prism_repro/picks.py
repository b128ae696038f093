"""Which runs a figure or a claim reads: one way to choose, shared by figures.py and claims.py."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from prism_repro import registry
from prism_repro.runspec import DEFAULT_VARIANT, fmt_num

__all__ = [
    "PAPER_WEIGHT_DECAY",
    "first_seed",
    "pick_weight_decay",
    "spearman_rho",
    "DEBIAS_METHODS",
    "debias_method",
    "debias_points",
]

log = logging.getLogger("prism_repro.picks")
PAPER_WEIGHT_DECAY = 1e-6  # the strength the paper's magnitude figures show (Figures 2, 3)


def first_seed(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """One run per setting: the one with the lowest seed."""
    return runs.sort_values(["seed", "run"]).groupby(by, sort=False).head(1)


def pick_weight_decay(values, wanted: float = PAPER_WEIGHT_DECAY, what: str = "") -> float | None:
    """``wanted`` if one of the (non-zero) ``values``; else the nearest on a log scale, with a
    warning; None when no value is positive."""
    values = sorted({float(v) for v in values if v > 0})
    if not values:
        return None
    for v in values:
        if np.isclose(v, wanted, rtol=1e-6, atol=0):
            return v
    near = min(values, key=lambda v: abs(np.log10(v) - np.log10(wanted)))
    log.warning(
        "%s: no runs at weight decay %s; showing %s instead", what, fmt_num(wanted), fmt_num(near)
    )
    return near


def spearman_rho(degree, norm) -> float:
    """Spearman rank correlation of magnitude and degree (NaN below two distinct values of either)."""
    frame = pd.DataFrame(
        {"degree": np.asarray(degree, float), "norm": np.asarray(norm, float)}
    ).dropna()
    if len(frame) < 2 or frame["degree"].nunique() < 2 or frame["norm"].nunique() < 2:
        return float("nan")
    return float(spearmanr(frame["degree"], frame["norm"]).statistic)


# Figure 9's methods (appendix D.2), in its legend order.
PRISM_DIRECTAU = "PRISM + DirectAU"
DEBIAS_METHODS = ("BPR", "DirectAU", PRISM_DIRECTAU, "ReSN", "IPL", "MACR")
_DEBIAS_LOSSES = ("bpr", "directau", "resn", "ipl", "macr")


def debias_method(metrics: pd.DataFrame) -> pd.Series:
    """Figure 9's method of each run, NaN for runs that are none of them: the loss's registry
    label (BPR, DirectAU, ReSN, IPL, MACR), "PRISM + DirectAU" for DirectAU with PRISM's init.
    The baselines are compared from Xavier initialisation, as in the paper."""
    loss, init = metrics["loss"], metrics["init"]
    method = pd.Series(np.nan, index=metrics.index, dtype=object)
    for name in _DEBIAS_LOSSES:
        method[(loss == name) & (init == "xavier")] = registry.LOSSES[name].label
    method[(loss == "directau") & (init == "prism")] = PRISM_DIRECTAU
    return method


def debias_points(metrics: pd.DataFrame) -> pd.DataFrame:
    """Figure 9's points: per (dataset, method), the setting with the best mean validation NDCG
    (PRISM's alpha, and any other axis left open, chosen on validation), with the mean and std
    over its seeds of test NDCG@k and of the unpopular/popular test NDCG ratio.

    A setting is a run id without its seed. Runs of several variants give a point per variant
    (column ``variant``). Diverged runs are left out; a run whose popular NDCG is 0 has no ratio
    (NaN, left out of the ratio's mean).
    """
    columns = ["dataset", "method", "variant", "setting", "seeds", "val_ndcg", "ratio"]
    columns += ["ratio_std"]
    columns += ["ndcg", "ndcg_std"]
    if metrics.empty:
        return pd.DataFrame(columns=columns)
    runs = metrics[~metrics["diverged"].astype(bool)].copy()
    runs["method"] = debias_method(runs)
    runs = runs.dropna(subset=["method"])
    if runs.empty:
        return pd.DataFrame(columns=columns)
    variant = runs["variant"] if "variant" in runs else pd.Series(None, index=runs.index)
    runs["variant"] = variant.astype(object).where(variant.notna(), DEFAULT_VARIANT)
    runs["setting"] = runs["run"].str.replace(r"_s[0-9]+(?=(_v[a-z0-9-]+)?$)", "", regex=True)
    popular = runs["test_ndcg_popular"].where(runs["test_ndcg_popular"] > 0)
    runs["ratio"] = runs["test_ndcg_unpopular"] / popular
    stats = (
        runs.groupby(["dataset", "method", "variant", "setting"])
        .agg(
            seeds=("run", "size"),
            val_ndcg=("val_ndcg", "mean"),
            ratio=("ratio", "mean"),
            ratio_std=("ratio", "std"),
            ndcg=("test_ndcg", "mean"),
            ndcg_std=("test_ndcg", "std"),
        )
        .reset_index()
        .dropna(subset=["val_ndcg"])
    )
    best = stats.loc[stats.groupby(["dataset", "method", "variant"])["val_ndcg"].idxmax()]
    order = {m: i for i, m in enumerate(DEBIAS_METHODS)}
    best = best.assign(
        _order=best["method"].map(order), _other=best["variant"] != DEFAULT_VARIANT
    ).sort_values(["dataset", "_other", "variant", "_order"])
    return best[columns].reset_index(drop=True)
