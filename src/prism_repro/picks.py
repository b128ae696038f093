"""Which runs a figure or a claim reads: one way to choose, shared by figures.py and claims.py."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from prism_repro.runspec import fmt_num

__all__ = ["PAPER_WEIGHT_DECAY", "first_seed", "pick_weight_decay", "spearman_rho"]

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
