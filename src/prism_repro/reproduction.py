"""docs/reproduction.md and the README's summary, generated from the run record and the paper.

``python -m prism_repro reproduction --record reference/gowalla-record/runs.csv --out
docs/reproduction.md --readme README.md`` compares the record (``prism_repro.record``) with the
paper's numbers: one row per Table 1 cell of the dataset (ours, the paper's mean ± std, the ratio
and a verdict), one paragraph per figure with the numbers behind each thing the paper says it
shows, the claims table's verdicts, the cause of every miss (from an investigations file the
people who investigate fill, keyed as the document shows) and the training time per run. It also
rewrites the block between ``<!-- reproduction:start -->`` and ``<!-- reproduction:end -->`` in
the README. The text depends only on the record, the investigations file, the config and the
paper's numbers, so a test regenerates it and fails when the committed files disagree.

Tuned experiments are selected from the record exactly as the workflow selects them
(``selection.select_settings`` on validation NDCG@20 with the first seed, the axes the preset
tunes). Experiments named ``<experiment>_<variant>`` (e.g. ``table1_wd_released``) are the same
experiment under another variant; no figure or table of the workflow reads them, this document
shows them beside the default variant.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from prism_repro import claims as claims_mod
from prism_repro import registry
from prism_repro.artifacts import CLAIM_EXPERIMENTS
from prism_repro.debias import validation_passes
from prism_repro.errors import UserError
from prism_repro.io import write_text
from prism_repro.picks import (
    DEBIAS_METHODS,
    PAPER_WEIGHT_DECAY,
    PRISM_DIRECTAU,
    debias_points,
    pick_weight_decay,
    spearman_rho,
)
from prism_repro.record import preset_config, read_record
from prism_repro.runspec import DEFAULT_VARIANT, RunSpec, fmt_num
from prism_repro.table1 import BACKBONE_NAMES, LOSS_NAMES, percent_diff, published
from prism_repro.variants import variant_difference

__all__ = [
    "verdict",
    "expected_epochs",
    "seconds_per_epoch",
    "cost_table",
    "Inputs",
    "render",
    "readme_block",
    "replace_block",
]

log = logging.getLogger("prism_repro.reproduction")

START, END = "<!-- reproduction:start -->", "<!-- reproduction:end -->"
PAPER = (
    'Loveland, Ju, Zhao, Shah, Koutra, "On the Role of Weight Decay in Collaborative Filtering: '
    "A Popularity Perspective\", KDD'25 (arXiv 2505.11318)"
)
MATCH, MISS, NOT_RUN = "matches", "misses", "not run yet"
# a variant's cell the preset never runs, shown beside the run one of the same variant
NOT_PLANNED = "not in the preset"
# a verdict on some of the settings it needs (a candidate the record lacks may still change the
# validation choice, or a sweep point the trend): "provisional (<verdict> on k of n settings)"
PROVISIONAL = "provisional"
REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
NOT_INVESTIGATED = "not investigated yet"
TABLE1_BACKBONES = ("mf", "nlmf")
TABLE1_LOSSES = ("ssm", "directau", "mawu")
METHODS = {"tuned_wd": "table1_wd", "prism": "table1_prism"}
METHOD_LABELS = {"tuned_wd": "tuned weight decay", "prism": "PRISM (α = 1, no decay)"}

# -- cost model -----------------------------------------------------------------------------
# Seconds per training epoch with both cores of the 2-core AVX-512 machine of README
# "Benchmarks" (`make bench`): MF + BPR 0.41 s and MF + DirectAU 4.47 s measured; SSM about 3x
# BPR and MAWU about 1.5x DirectAU assumed (their fast paths are being built); non-linear MF 1.5x
# and LightGCN 3x MF assumed. Validation (dot and cosine in one pass) 2.53-2.67 s measured: 2.6.
# Figure 9's baselines train on BPR's pairs (ReSN, IPL: BPR plus a regulariser; MACR: BCE on the
# same pairs): BPR's seconds assumed.
TRAIN_SECONDS = {"bpr": 0.41, "ssm": 1.23, "directau": 4.47, "mawu": 6.71}
TRAIN_SECONDS |= {loss: TRAIN_SECONDS["bpr"] for loss in ("resn", "ipl", "macr")}
BACKBONE_FACTOR = {"mf": 1.0, "nlmf": 1.5, "lightgcn": 3.0}
VALIDATION_SECONDS = 2.6
CORES = 2


def seconds_per_epoch(spec: RunSpec) -> float:
    """Estimated seconds of one epoch (training and validation) on the 2-core machine."""
    train = TRAIN_SECONDS.get(spec.loss, TRAIN_SECONDS["directau"])
    passes = validation_passes(spec.loss)
    return train * BACKBONE_FACTOR.get(spec.backbone, 1.0) + passes * VALIDATION_SECONDS


# epochs until early stopping (patience included) by decay class, estimated from what Gowalla
# runs showed: PRISM at lr 1e-2 stopped at 38 (best 28), no decay at lr 1e-3 at 27 (best 17);
# weight decay 1e-6 at lr 1e-3 was still improving at 147 of a 150-epoch cap and the paper
# reports 249 epochs on Gowalla; the rest (1e-6 at lr 1e-2, 1e-4) are assumptions
CLASS_EPOCHS = {"prism": 40, "weak": 30, "decay-fast-lr": 60, "decay-strong": 100, "decay": 250}


def epoch_class(spec: RunSpec) -> str:
    """Which of CLASS_EPOCHS' classes a run's early stopping is expected to follow."""
    if spec.init != "xavier":
        return "prism"
    if spec.decay != "full" or spec.weight_decay <= 1e-8:
        return "weak"
    if spec.lr >= 1e-2:
        return "decay-fast-lr"
    if spec.weight_decay >= 1e-4:
        return "decay-strong"
    return "decay"


def expected_epochs(spec: RunSpec, cap: int) -> int:
    """Epochs until early stopping, by the run's decay class (CLASS_EPOCHS)."""
    return min(CLASS_EPOCHS[epoch_class(spec)], cap)


def cost_table(config: Mapping, dataset: str | None = None) -> pd.DataFrame:
    """The preset's runs before selection, by model: runs, their estimated epochs (summed),
    seconds per epoch and hours (runs x epochs x s/epoch) on the 2-core machine."""
    from prism_repro.grid import all_candidate_runs

    cap = int(config["train"]["max_epochs"])
    rows = [
        {
            "backbone": spec.backbone,
            "loss": spec.loss,
            "runs": 1,
            "epochs": expected_epochs(spec, cap),
            "s_per_epoch": round(seconds_per_epoch(spec), 2),
            "cap_epochs": cap,
        }
        for d, spec in all_candidate_runs(config)
        if dataset is None or d == dataset
    ]
    columns = ["backbone", "loss", "s_per_epoch", "runs", "epochs", "cap_epochs", "hours"]
    if not rows:
        return pd.DataFrame(columns=columns)
    table = (
        pd.DataFrame(rows)
        .groupby(["backbone", "loss", "s_per_epoch"], as_index=False)[
            ["runs", "epochs", "cap_epochs"]
        ]
        .sum()
    )
    table["hours"] = table["epochs"] * table["s_per_epoch"] / 3600
    return table[columns]


# -- verdicts -------------------------------------------------------------------------------


def verdict(ours: float, paper_mean: float, paper_std: float) -> str:
    """Within 5 % of the paper's mean or within 2 of its standard deviations: a match."""
    if ours is None or pd.isna(ours) or pd.isna(paper_mean):
        return NOT_RUN
    std = 0.0 if pd.isna(paper_std) else paper_std
    close = abs(ours - paper_mean) <= 0.05 * abs(paper_mean) + 1e-12
    return MATCH if close or abs(ours - paper_mean) <= 2 * std + 1e-12 else MISS


def _ok(flag: bool) -> str:
    return REPRODUCED if flag else NOT_REPRODUCED


def provisional(outcome: str, settings: tuple[int, int]) -> str:
    """``outcome`` marked provisional when only ``recorded`` of the ``planned`` settings it
    needs are in the record; settings = (planned, recorded)."""
    planned, recorded = settings
    if outcome == NOT_RUN or recorded >= planned:
        return outcome
    return f"{PROVISIONAL} ({outcome} on {recorded} of {planned} settings)"


def underlying(outcome: str) -> str:
    """The verdict inside a provisional one (its cause is looked up as for a final one)."""
    m = re.fullmatch(rf"{PROVISIONAL} \((.+) on \d+ of \d+ settings\)", outcome)
    return m.group(1) if m else outcome


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


# -- inputs ---------------------------------------------------------------------------------


@dataclass
class Inputs:
    record: pd.DataFrame  # the whole record
    investigations: dict  # key -> cause
    config: dict | None  # the preset's resolved config (tune axes, grid, cost)
    preset: str
    dataset: str = "Gowalla"
    record_path: str = "reference/gowalla-record/runs.csv"
    investigations_path: str = "reference/gowalla-record/investigations.yaml"

    def __post_init__(self):
        rows = self.record[self.record["dataset"] == self.dataset].copy()
        # one row per run: the preset's own first, then the latest from other presets
        rows["_mine"] = rows["preset"] == self.preset
        rows = rows.sort_values(["_mine", "finished"], ascending=[False, False], kind="stable")
        rows = rows.drop_duplicates(["dataset", "run"]).drop(columns="_mine")
        rows["setting"] = [_setting(r) for r in rows["run"]]
        self.rows = rows.sort_values("run", kind="stable").reset_index(drop=True)
        self.variants = list((self.config or {}).get("variants") or [DEFAULT_VARIANT])

    def base(self, experiment: str) -> str:
        for v in self.variants:
            if v != DEFAULT_VARIANT and experiment.endswith(f"_{v}"):
                return experiment[: -len(v) - 1]
        return experiment

    def tune(self, base: str) -> list[str]:
        exps = (self.config or {}).get("experiments") or {}
        for name in [base, *(f"{base}_{v}" for v in self.variants)]:
            if name in exps:
                return list(exps[name].get("tune") or [])
        return []

    def tagged(self, base: str) -> pd.DataFrame:
        """Rows whose experiments include ``base`` or ``base_<variant>``."""
        mask = [
            any(self.base(e) == base for e in str(tags).split())
            for tags in self.rows["experiments"]
        ]
        return self.rows[np.asarray(mask, dtype=bool)]

    def final(self, base: str) -> pd.DataFrame:
        """The runs an experiment reports: the selected settings (tuned axes chosen on
        validation with the first seed) with every recorded seed; every run when untuned."""
        from prism_repro.selection import select_settings

        rows = self.tagged(base)
        tune = self.tune(base)
        if rows.empty or not tune:
            return rows.assign(experiment=base)
        first = rows[rows["seed"] == rows.groupby("setting")["seed"].transform("min")]
        selected = select_settings(first.drop(columns=["setting"]), tune)
        if selected.empty:
            return rows.iloc[:0].assign(experiment=base)
        keep = {_setting(r) for r in selected["selected_run"]}
        return rows[rows["setting"].isin(keep)].assign(experiment=base)

    def cause(self, key: str, outcome: str) -> str:
        if underlying(outcome) not in (MISS, NOT_REPRODUCED):
            return ""
        text = self.investigations.get(key)
        if not text and outcome.startswith(PROVISIONAL):
            return ""  # not a verdict yet: investigated once its settings are all run
        return str(text).strip() if text else f"{NOT_INVESTIGATED} (key `{key}`)"


def _setting(run_id: str) -> str:
    """A run's settings without its seed (runs of one setting differ only by seed)."""
    spec = RunSpec.parse(run_id)
    return RunSpec(**{**spec.__dict__, "seed": 0}).run_id


# -- formatting -----------------------------------------------------------------------------


def f4(x) -> str:
    return "—" if x is None or pd.isna(x) else f"{x:.4f}"


def f2(x) -> str:
    return "—" if x is None or pd.isna(x) else f"{x:.2f}"


def pct(x) -> str:
    return "—" if x is None or pd.isna(x) else f"{x:+.2f} %"


def num(x) -> str:
    return "—" if x is None or pd.isna(x) else fmt_num(x)


def intf(x) -> str:
    return "—" if x is None or pd.isna(x) else str(int(x))


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    def clean(cell):
        return str(cell).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def label(backbone: str, loss: str) -> str:
    return f"{BACKBONE_NAMES.get(backbone, backbone)} + {LOSS_NAMES.get(loss, loss)}"


# -- Table 1 --------------------------------------------------------------------------------


def table1_cells(inp: Inputs) -> pd.DataFrame:
    """One row per Table 1 cell of the dataset and variant: ours, the paper's, verdict, cause."""
    paper = published("table1")
    paper = paper[paper["dataset"] == inp.dataset]
    finals = {m: inp.final(exp) for m, exp in METHODS.items()}
    variants = [DEFAULT_VARIANT] + sorted(
        {
            v
            for f in finals.values()
            for v in f["variant"].unique()
            if v != DEFAULT_VARIANT and isinstance(v, str)
        }
        | _planned_variants(inp)
    )
    rows = []
    for backbone in TABLE1_BACKBONES:
        for loss in TABLE1_LOSSES:
            for variant in variants:
                # a variant's cells where the record or the preset has runs of either method
                if variant != DEFAULT_VARIANT and not any(
                    _has_variant(inp, finals[m], backbone, loss, m, variant) for m in METHODS
                ):
                    continue
                for method in METHODS:
                    rows.append(_cell(inp, paper, finals[method], backbone, loss, method, variant))
    return pd.DataFrame(rows)


def _planned_variants(inp: Inputs) -> set[str]:
    out = set()
    for name in (inp.config or {}).get("experiments") or {}:
        if inp.base(name) in METHODS.values():
            out |= set(inp.config["experiments"][name].get("variants") or [DEFAULT_VARIANT])
    return out - {DEFAULT_VARIANT}


def _has_variant(inp: Inputs, final, backbone: str, loss: str, method: str, variant: str) -> bool:
    """Whether the record or the preset has runs of this Table 1 cell under ``variant``."""
    if (
        (final["backbone"] == backbone) & (final["loss"] == loss) & (final["variant"] == variant)
    ).any():
        return True
    exps = (inp.config or {}).get("experiments") or {}
    return any(
        inp.base(name) == METHODS[method]
        and variant in (exp.get("variants") or [])
        and loss in exp["losses"]
        and backbone in exp["backbones"]
        and inp.dataset in exp["datasets"]
        for name, exp in exps.items()
    )


def _cell(inp, paper, final, backbone, loss, method, variant) -> dict:
    part = final[
        (final["backbone"] == backbone) & (final["loss"] == loss) & (final["variant"] == variant)
    ]
    part = part[~part["diverged"].astype(bool)]
    ref = paper[
        (paper["backbone"] == BACKBONE_NAMES[backbone])
        & (paper["loss"] == LOSS_NAMES[loss])
        & (paper["method"] == method)
    ]
    p_mean = float(ref["ndcg20_mean"].iloc[0]) if len(ref) else float("nan")
    p_std = float(ref["ndcg20_std"].iloc[0]) if len(ref) else float("nan")
    ours = float(part["test_ndcg"].mean()) if len(part) else float("nan")
    found = verdict(ours, p_mean, p_std)
    settings = _candidates(inp, METHODS[method], backbone, loss, variant)
    outcome = NOT_PLANNED if settings[0] == 0 and part.empty else provisional(found, settings)
    key = f"table1/{BACKBONE_NAMES[backbone]}/{LOSS_NAMES[loss]}/{method}/{variant}"
    return {
        "backbone": backbone,
        "loss": loss,
        "method": method,
        "variant": variant,
        "ours": ours,
        "seeds": len(part),
        "lr": part["lr"].iloc[0] if len(part) else float("nan"),
        "weight_decay": part["weight_decay"].iloc[0] if len(part) else float("nan"),
        "best_epoch": part["best_epoch"].mean() if len(part) else float("nan"),
        "epochs_run": part["epochs_run"].mean() if len(part) else float("nan"),
        "max_epochs": part["max_epochs"].max() if len(part) else float("nan"),
        "paper_mean": p_mean,
        "paper_std": p_std,
        "ratio": ours / p_mean if p_mean else float("nan"),
        "verdict": outcome,
        "key": key,
        "cause": inp.cause(key, outcome),
    }


def _candidates(
    inp: Inputs, base: str, backbone: str | None = None, loss: str | None = None, variant=None
) -> tuple[int, int]:
    """(planned, recorded): the preset's settings of an experiment (and its variant
    experiments), optionally of one cell, and how many of them the record holds."""
    from prism_repro.grid import experiment_runs

    exps = (inp.config or {}).get("experiments") or {}
    want = {"backbone": backbone, "loss": loss, "variant": variant}
    planned = {
        _setting(spec.run_id)
        for name in exps
        if inp.base(name) == base
        for dataset, spec in experiment_runs(inp.config, name)
        if dataset == inp.dataset
        and all(v is None or getattr(spec, k) == v for k, v in want.items())
    }
    return len(planned), len(planned & set(inp.tagged(base)["setting"]))


def table1_section(inp: Inputs, cells: pd.DataFrame) -> str:
    out = [
        f"## Table 1, {inp.dataset}",
        "",
        "Test NDCG@20 of the validation-selected run, tuned weight decay against PRISM, beside "
        "the paper's Table 1 (mean ± std over 3 seeds). Verdict: *matches* when ours is within "
        "5 % of the paper's mean or within 2 of its standard deviations, else *misses*; "
        "*provisional* while the record lacks some of the cell's candidate settings (the "
        "learning rate chosen on validation so far may still change); *not in the preset* for a "
        "variant's cell the preset does not run, shown beside the one it does. "
        "Settings: the learning rate chosen on validation, weight decay, best / stopped epoch "
        "(of the epoch cap).",
        "",
    ]
    rows = []
    for r in cells.itertuples():
        settings = (
            f"lr {num(r.lr)}, wd {num(r.weight_decay)}, epoch {intf(r.best_epoch)} / "
            f"{intf(r.epochs_run)} (cap {intf(r.max_epochs)})"
            if r.seeds
            else "—"
        )
        rows.append(
            [
                label(r.backbone, r.loss),
                METHOD_LABELS[r.method],
                r.variant,
                f4(r.ours),
                f"{f4(r.paper_mean)} ± {f4(r.paper_std)}",
                "—" if pd.isna(r.ratio) else f"{r.ratio:.3f}",
                r.verdict,
                settings,
                r.cause or "—",
            ]
        )
    out.append(
        md_table(
            [
                "cell",
                "method",
                "variant",
                "ours",
                "paper",
                "ours / paper",
                "verdict",
                "settings",
                "cause",
            ],
            rows,
        )
    )
    out += ["", "% Diff = (PRISM - tuned weight decay) / PRISM, ours against the paper's:", ""]
    rows = []
    for (backbone, loss, variant), part in cells.groupby(
        ["backbone", "loss", "variant"], sort=False
    ):
        by = part.set_index("method")
        ours = percent_diff(by.at["prism", "ours"], by.at["tuned_wd", "ours"])
        paper = percent_diff(by.at["prism", "paper_mean"], by.at["tuned_wd", "paper_mean"])
        rows.append([label(backbone, loss), variant, pct(ours), pct(paper)])
    out.append(md_table(["cell", "variant", "ours", "paper"], rows))
    out += ["", _pool_sentence(cells, inp.config or {})]
    return "\n".join(out)


def _pool_sentence(cells: pd.DataFrame, config: Mapping) -> str:
    """Which variant's cells land nearer the paper, each variant named by what it changes."""
    other = cells[cells["variant"] != DEFAULT_VARIANT]
    if other.empty:
        return "No cell was run under another variant."
    parts = []
    base = cells[cells["variant"] == DEFAULT_VARIANT]
    for variant in sorted(other["variant"].unique()):
        mine = cells[cells["variant"] == variant]
        both = base.merge(mine, on=["backbone", "loss", "method"], suffixes=("_p", "_v"))
        both = both.dropna(subset=["ours_p", "ours_v"])
        if both.empty:
            parts.append(
                f"Cells run under both `{DEFAULT_VARIANT}` and `{variant}`: not run yet under both."
            )
            continue
        err_p = (both["ours_p"] - both["paper_mean_p"]).abs().mean()
        err_v = (both["ours_v"] - both["paper_mean_p"]).abs().mean()
        nearer = DEFAULT_VARIANT if err_p <= err_v else variant
        try:
            change = variant_difference(config, variant)
        except KeyError:
            change = "not defined in config.yaml"
        parts.append(
            f"Over the {len(both)} cell(s) run under both `{DEFAULT_VARIANT}` and `{variant}` "
            f"({change}), the mean distance to the paper's mean is {err_p:.4f} and "
            f"{err_v:.4f}: `{nearer}` reproduces the paper's numbers more closely."
        )
    return " ".join(parts)


# -- figures --------------------------------------------------------------------------------


@dataclass
class Check:
    key: str
    claim: str
    ours: str
    criterion: str
    verdict: str


def _wd(frame: pd.DataFrame) -> pd.Series:
    return frame["weight_decay"].where(frame["decay"] != "none", 0.0)


def _sweep_table(frame: pd.DataFrame, x: str, xlabel: str, rho: bool = False) -> str:
    if frame.empty:
        return "_No runs recorded yet._"
    frame = frame.assign(_x=_wd(frame) if x == "weight_decay" else frame[x])
    groups = ["backbone", "loss", "variant", "_x", "decay"]
    rows = []
    agg = frame[~frame["diverged"].astype(bool)].groupby(groups, sort=True, dropna=False)
    for (backbone, loss, variant, xv, decay), part in agg:
        row = [
            label(backbone, loss),
            variant,
            decay if x == "weight_decay" else "",
            num(xv),
            f4(part["test_ndcg"].mean()),
        ]
        row += [f4(part[f"test_ndcg_{g}"].mean()) for g in registry.POPULARITY_GROUPS]
        row += [f"{intf(part['best_epoch'].mean())} / {intf(part['epochs_run'].mean())}"]
        if rho:
            row.append(f2(part["item_norm_rho"].mean()))
        rows.append(row)
    diverged = frame[frame["diverged"].astype(bool)]
    header = ["model", "variant", "decay" if x == "weight_decay" else "", xlabel, "test NDCG@20"]
    header += list(registry.POPULARITY_GROUPS) + ["best / stopped epoch"]
    if rho:
        header.append("ρ(item norm, degree)")
    if x != "weight_decay":
        header.pop(2)
        rows = [r[:2] + r[3:] for r in rows]
    text = md_table(header, rows)
    if len(diverged):
        text += "\n\nDiverged (left out): " + ", ".join(f"`{r}`" for r in diverged["run"])
    return text


def _at(frame: pd.DataFrame, wd: float, decay: str | None = None) -> pd.DataFrame:
    w = _wd(frame)
    mask = np.isclose(w, wd, rtol=1e-6, atol=0) if wd else (w == 0)
    if decay is not None and wd:
        mask &= frame["decay"] == decay
    return frame[mask & ~frame["diverged"].astype(bool)]


def popular_shift(frame: pd.DataFrame, key: str, what: str) -> Check:
    """Stronger decay shifts NDCG toward popular items: at the figures' strength (1e-6) against
    none, popular NDCG rises and unpopular NDCG falls, for every model of the panel."""
    claim = f"{what}: weight decay shifts performance toward popular items"
    criterion = "at wd 1e-6 vs 0: popular NDCG higher and unpopular NDCG lower, every model"
    frame = frame[frame["variant"] == DEFAULT_VARIANT]
    strength = pick_weight_decay(_wd(frame).unique(), what=key) if len(frame) else None
    parts, flags = [], []
    for (backbone, loss), part in frame.groupby(["backbone", "loss"], sort=True):
        a, b = _at(part, 0.0), _at(part, strength or PAPER_WEIGHT_DECAY, "full")
        if a.empty or b.empty:
            continue
        pop = (a["test_ndcg_popular"].mean(), b["test_ndcg_popular"].mean())
        unp = (a["test_ndcg_unpopular"].mean(), b["test_ndcg_unpopular"].mean())
        flags.append(pop[1] > pop[0] and unp[1] < unp[0])
        parts.append(
            f"{label(backbone, loss)}: popular {f4(pop[0])} -> {f4(pop[1])}, "
            f"unpopular {f4(unp[0])} -> {f4(unp[1])}"
        )
    if not flags:
        return Check(key, claim, "—", criterion, NOT_RUN)
    return Check(
        key,
        claim,
        f"wd 0 -> {num(strength)}: " + "; ".join(parts),
        criterion,
        _ok(all(flags)),
    )


def _spread(series: pd.Series) -> float:
    return float((series.max() - series.min()) / series.max() * 100) if len(series) else np.nan


def fig1_checks(inp: Inputs, frame: pd.DataFrame) -> list[Check]:
    checks = [popular_shift(frame, "fig1/popular-shift", "Figure 1")]
    paper = frame[(frame["variant"] == DEFAULT_VARIANT) & ~frame["diverged"].astype(bool)]
    by = {
        loss: paper[(paper["loss"] == loss) & (_wd(paper) < 1e-4)]
        .assign(_w=lambda f: _wd(f))
        .groupby("_w")["test_ndcg"]
        .mean()
        for loss in ("bpr", "directau")
    }
    claim = "Figure 1: DirectAU depends on weight decay far more than BPR"
    criterion = "relative NDCG range over wd {0, 1e-8, 1e-6}: DirectAU's > 2 x BPR's"
    if all(len(s) >= 2 for s in by.values()):
        s_bpr, s_au = _spread(by["bpr"]), _spread(by["directau"])
        checks.append(
            Check(
                "fig1/directau-depends-more",
                claim,
                f"DirectAU {s_au:.1f} %, BPR {s_bpr:.1f} %",
                criterion,
                _ok(s_au > 2 * s_bpr),
            )
        )
    else:
        checks.append(Check("fig1/directau-depends-more", claim, "—", criterion, NOT_RUN))
    claim = "Figure 1: BPR at weight decay 1e-4 is over-regularised (NDCG near 0)"
    criterion = "BPR's NDCG at 1e-4 < 25 % of its best over the sweep"
    bpr = paper[paper["loss"] == "bpr"]
    strong = _at(bpr, 1e-4, "full")
    if len(strong) and len(bpr):
        best = bpr.assign(_w=_wd(bpr)).groupby("_w")["test_ndcg"].mean().max()
        value = strong["test_ndcg"].mean()
        checks.append(
            Check(
                "fig1/bpr-over-regularised",
                claim,
                f"{f4(value)} at 1e-4, best {f4(best)}",
                criterion,
                _ok(value < 0.25 * best),
            )
        )
    else:
        checks.append(Check("fig1/bpr-over-regularised", claim, "—", criterion, NOT_RUN))
    return checks


def magnitude_check(frame: pd.DataFrame) -> Check:
    claim = "Figure 2: item magnitude follows popularity with weight decay (1e-6), weakly without"
    criterion = "Spearman ρ(item norm, train degree) higher at 1e-6 than at 0, BPR and DirectAU"
    frame = frame[frame["variant"] == DEFAULT_VARIANT]
    parts, flags = [], []
    for loss, part in frame.groupby("loss", sort=True):
        a, b = _at(part, 0.0), _at(part, PAPER_WEIGHT_DECAY, "full")
        if a.empty or b.empty:
            continue
        ra, rb = a["item_norm_rho"].mean(), b["item_norm_rho"].mean()
        flags.append(rb > ra)
        parts.append(f"{LOSS_NAMES.get(loss, loss)} {f2(rb)} vs {f2(ra)}")
    if not flags:
        return Check("fig2/magnitude", claim, "—", criterion, NOT_RUN)
    return Check("fig2/magnitude", claim, "; ".join(parts), criterion, _ok(all(flags)))


def fig3_checks(inp: Inputs, frame: pd.DataFrame, fig1: pd.DataFrame) -> list[Check]:
    claims = claims_mod.batched_claim(frame.assign(experiment="fig3"))
    out = [
        Check(
            "fig3/batched-alike",
            "Figure 3: all batched-decay strengths perform alike and like no decay",
            f"max gap {claims['ours']:.2f} %" if pd.notna(claims["ours"]) else "—",
            "max relative test NDCG gap to wd 0 < 5 %",
            claims["verdict"] if claims["verdict"] != claims_mod.NOT_RUN else NOT_RUN,
        )
    ]
    claim = "Figure 3: item magnitudes under batched decay 1e-6 look like no decay (Figure 2b)"
    criterion = "|ρ(batched 1e-6) - ρ(none)| < |ρ(full 1e-6) - ρ(none)|"
    full = fig1[(fig1["loss"] == "directau") & (fig1["variant"] == DEFAULT_VARIANT)]
    none = _at(frame, 0.0)
    batched = _at(frame, PAPER_WEIGHT_DECAY, "batched")
    full_b = _at(full, PAPER_WEIGHT_DECAY, "full")
    if none.empty or batched.empty or full_b.empty:
        out.append(Check("fig3/magnitude", claim, "—", criterion, NOT_RUN))
    else:
        r0, rb, rf = (f["item_norm_rho"].mean() for f in (none, batched, full_b))
        out.append(
            Check(
                "fig3/magnitude",
                claim,
                f"ρ none {f2(r0)}, batched {f2(rb)}, full {f2(rf)}",
                criterion,
                _ok(abs(rb - r0) < abs(rf - r0)),
            )
        )
    return out


def alpha_checks(metrics: pd.DataFrame, fig4: pd.DataFrame) -> list[Check]:
    rows = claims_mod.alpha_claims(metrics)
    out = []
    for row, key, fig in zip(rows, ("fig4/fewer-epochs", "fig5/fairer"), ("Figure 4", "Figure 5")):
        out.append(
            Check(
                key,
                f"{fig}: {row['claim']} (paper {row['paper']:g} % on average over datasets)",
                pct(row["ours"]).replace("+", "") if pd.notna(row["ours"]) else "—",
                row["criterion"] or "—",
                row["verdict"] if row["verdict"] != claims_mod.NOT_RUN else NOT_RUN,
            )
        )
    claim = "Figure 5: lower alpha trades popular-item for unpopular-item NDCG"
    criterion = "Spearman ρ(alpha, popular NDCG) > 0 and ρ(alpha, unpopular NDCG) < 0"
    sweep = fig4[(fig4["init"] == "prism") & ~fig4["diverged"].astype(bool)]
    means = sweep.groupby("alpha")[["test_ndcg_popular", "test_ndcg_unpopular"]].mean()
    if len(means) >= 3:
        rp = spearman_rho(means.index, means["test_ndcg_popular"])
        ru = spearman_rho(means.index, means["test_ndcg_unpopular"])
        out.append(
            Check(
                "fig5/trade",
                claim,
                f"ρ popular {f2(rp)}, ρ unpopular {f2(ru)} over {len(means)} alphas",
                criterion,
                _ok(rp > 0 and ru < 0),
            )
        )
    else:
        out.append(Check("fig5/trade", claim, "—", criterion, NOT_RUN))
    return out


def _fig4_reference(metrics: pd.DataFrame) -> str:
    """The tuned weight-decay model Figure 4 compares with, and the alpha chosen on validation."""
    ref = metrics[
        (metrics["experiment"] == "table1_wd")
        & (metrics["backbone"] == "mf")
        & (metrics["loss"] == "directau")
        & ~metrics["diverged"].astype(bool)
    ]
    sweep = metrics[(metrics["experiment"] == "fig4") & ~metrics["diverged"].astype(bool)]
    if ref.empty or sweep.empty:
        return "Reference (Table 1's tuned weight decay, MF + DirectAU) or sweep: not run yet."
    means = sweep.groupby("alpha")[["val_ndcg", "test_ndcg", "epochs_run"]].mean()
    best = means["val_ndcg"].idxmax()
    e_ref, e_best = ref["epochs_run"].mean(), means.at[best, "epochs_run"]
    return (
        f"Reference, Table 1's tuned weight decay (MF + DirectAU, lr {num(ref['lr'].iloc[0])}): "
        f"test {f4(ref['test_ndcg'].mean())} after {intf(e_ref)} epochs. Alpha chosen on "
        f"validation: {num(best)}, test {f4(means.at[best, 'test_ndcg'])} after {intf(e_best)} "
        f"epochs ({pct((e_best - e_ref) / e_ref * 100)} epochs; the paper on Gowalla: 249 -> 125, "
        "-49.80 %)."
    )


def fig6_check(frame: pd.DataFrame) -> Check:
    claim = "Figure 6: cosine NDCG saturates early, dot-product NDCG keeps rising with decay"
    criterion = "at wd 1e-6: first epoch reaching 95 % of the best, cosine < dot product"
    run = _at(frame[frame["loss"] == "directau"], PAPER_WEIGHT_DECAY, "full")
    run = run.dropna(subset=["epoch95_dot", "epoch95_cosine"])
    if run.empty:
        return Check("fig6/cosine-early", claim, "—", criterion, NOT_RUN)
    dot, cos = run["epoch95_dot"].mean(), run["epoch95_cosine"].mean()
    return Check(
        "fig6/cosine-early",
        claim,
        f"epoch {intf(cos)} (cosine) vs {intf(dot)} (dot product)",
        criterion,
        _ok(cos < dot),
    )


def fig6_table(frame: pd.DataFrame) -> str:
    frame = frame[frame["loss"] == "directau"].dropna(subset=["epoch95_dot"])
    if frame.empty:
        return "_No runs with cosine validation recorded yet._"
    rows = [
        [
            num(w),
            f4(r.val_best_dot),
            f4(r.val_best_cosine),
            intf(r.epoch95_dot),
            intf(r.epoch95_cosine),
            intf(r.epochs_run),
        ]
        for w, r in zip(_wd(frame), frame.itertuples())
    ]
    rows.sort(key=lambda r: float(r[0]))
    return md_table(
        [
            "weight decay",
            "best val NDCG (dot)",
            "best val NDCG (cosine)",
            "epoch at 95 % (dot)",
            "epoch at 95 % (cosine)",
            "epochs",
        ],
        rows,
    )


def lightgcn_check(frame: pd.DataFrame) -> Check:
    row = claims_mod.lightgcn_claim(frame.assign(experiment="fig8"))
    return Check(
        "fig8/flat",
        "Figure 8: LightGCN + DirectAU stays nearly flat across weight decay",
        f"spread {row['ours']:.1f} %" if pd.notna(row["ours"]) else "—",
        "(max - min) / max of test NDCG over weight decay < 10 %",
        row["verdict"] if row["verdict"] != claims_mod.NOT_RUN else NOT_RUN,
    )


def variants_sentence(frame: pd.DataFrame, loss: str) -> str:
    part = frame[(frame["loss"] == loss) & ~frame["diverged"].astype(bool)]
    if part["variant"].nunique() < 2:
        return ""
    bits = []
    for variant, v in part.groupby("variant", sort=True):
        means = v.assign(_w=_wd(v)).groupby("_w")["test_ndcg"].mean()
        bits.append(f"`{variant}` " + ", ".join(f"{f4(m)} (wd {num(w)})" for w, m in means.items()))
    return f"{LOSS_NAMES.get(loss, loss)} under each variant: " + "; ".join(bits) + "."


def fig9_table(frame: pd.DataFrame) -> str:
    """One row per Figure 9 method (the paper's variant): the setting chosen on validation."""
    points = debias_points(frame)
    points = points[points["variant"] == DEFAULT_VARIANT]
    if points.empty:
        return "_No runs recorded yet._"
    return md_table(
        [
            "method",
            "setting (chosen on validation)",
            "val NDCG@20",
            "test NDCG@20",
            "unpopular / popular test NDCG@20",
        ],
        [
            [r.method, f"`{r.setting}`", f4(r.val_ndcg), f4(r.ndcg), f4(r.ratio)]
            for r in points.itertuples()
        ],
    )


def debias_check(frame: pd.DataFrame) -> Check:
    claim = "Figure 9: PRISM + DirectAU has the best unpopular/popular ratio and the best NDCG"
    criterion = "both above every other method's (settings chosen on validation)"
    row = claims_mod.debias_claim(frame)
    points = debias_points(frame)
    points = points[points["variant"] == DEFAULT_VARIANT]
    prism = points[points["method"] == PRISM_DIRECTAU]
    others = points[points["method"] != PRISM_DIRECTAU]
    if row["verdict"] == claims_mod.NOT_RUN or prism.empty or others.empty:
        missing = sorted(set(DEBIAS_METHODS) - set(points["method"]))
        ours = "missing: " + ", ".join(missing) if missing else "—"
        return Check("fig9/best", claim, ours, criterion, NOT_RUN)
    p = prism.iloc[0]
    best_ratio = others.loc[others["ratio"].idxmax()]
    best_ndcg = others.loc[others["ndcg"].idxmax()]
    ours = (
        f"ratio {f4(p.ratio)} (best other: {best_ratio.method} {f4(best_ratio.ratio)}); "
        f"NDCG {f4(p.ndcg)} (best other: {best_ndcg.method} {f4(best_ndcg.ndcg)})"
    )
    missing = sorted(set(DEBIAS_METHODS) - set(points["method"]))
    if missing:
        ours += "; not run yet: " + ", ".join(missing)
        return Check("fig9/best", claim, ours, criterion, NOT_RUN)
    return Check("fig9/best", claim, ours, criterion, _ok(row["verdict"] == "reproduced"))


FIGURES = {
    "fig1": "Figure 1: MF with BPR and DirectAU against full weight decay",
    "fig2": "Figure 2: item magnitude against popularity (Figure 1's runs)",
    "fig3": "Figure 3: DirectAU with batched weight decay",
    "fig4": "Figure 4: PRISM's alpha, NDCG against epochs until early stopping",
    "fig5": "Figure 5: PRISM's alpha, NDCG by popularity",
    "fig6": "Figure 6: validation curves by dot product and by cosine (Figure 1's DirectAU runs)",
    "fig7": "Figure 7: Theorem 3.1 and its Monte-Carlo check (no training runs)",
    "fig8": "Figure 8: LightGCN with DirectAU",
    "fig9": "Figure 9: debiasing baselines",
    "fig10": "Figure 10: SSM and MAWU (MF)",
    "fig11": "Figure 11: non-linear MF",
}
PAPER_SAYS = {
    "fig1": "stronger decay shifts performance toward popular items; DirectAU depends on decay "
    "far more than BPR; BPR at 1e-4 is over-regularised (NDCG near 0) and left out",
    "fig2": "strong correlation of item magnitude and popularity with weight decay 1e-6, weak "
    "without",
    "fig3": "all batched strengths perform alike and like no decay; magnitudes at 1e-6 "
    "resemble Figure 2(b)",
    "fig4": "some alphas reach comparable or better NDCG in far fewer epochs (Gowalla: 249 -> "
    "125 epochs, -49.80 %)",
    "fig5": "lower alpha trades popular-item for unpopular-item NDCG with little loss overall",
    "fig6": "cosine NDCG saturates early; dot-product NDCG keeps rising slowly as decay encodes "
    "popularity into magnitudes (Appendix B.5)",
    "fig7": "clear differentiation by degree for |B|/|E| between about 0.01 and 0.05 "
    "(Appendix C.2)",
    "fig8": "performance stays nearly flat across weight decay (Appendix D.1)",
    "fig9": "PRISM + DirectAU against BPR, DirectAU, ReSN, IPL and MACR on fairness and NDCG "
    "(Appendix D.2)",
    "fig10": "as Figure 1, for SSM and MAWU (Appendix D.3)",
    "fig11": "as Figure 1, for non-linear MF with SSM, DirectAU and MAWU (Appendix D.4)",
}


# What each figure's checks and each claim read: (experiment, backbone, loss), None = any; the
# default variant's settings (other variants' runs are compared beside, not checked)
CHECK_NEEDS = {
    "fig1": [("fig1", None, None)],
    "fig2": [("fig1", None, None)],
    "fig3": [("fig3", None, None)],
    "fig4": [("fig4", None, None), ("table1_wd", "mf", "directau")],
    "fig5": [("fig4", None, None), ("table1_wd", "mf", "directau")],
    "fig6": [("fig6", None, None)],
    "fig7": [],
    "fig8": [("fig8", None, None)],
    "fig9": [("fig9", None, None), ("fig4", None, None)],
    "fig10": [("fig10", None, None)],
    "fig11": [("fig11", None, None)],
}
CLAIM_NEEDS = {  # claim text prefix -> needs
    "PRISM vs tuned weight decay, linear MF": [
        ("table1_wd", "mf", None),
        ("table1_prism", "mf", None),
    ],
    "PRISM vs tuned weight decay, non-linear MF": [
        ("table1_wd", "nlmf", None),
        ("table1_prism", "nlmf", None),
    ],
    "PRISM with tuned alpha": CHECK_NEEDS["fig4"],
    "Batched weight decay": CHECK_NEEDS["fig3"],
    "LightGCN": CHECK_NEEDS["fig8"],
    "PRISM + DirectAU has the best": CHECK_NEEDS["fig9"],
    "Item magnitude": CHECK_NEEDS["fig2"],
}


def settings_needed(inp: Inputs, needs) -> tuple[int, int]:
    """(planned, recorded) settings of the default variant summed over ``needs``."""
    counts = [_candidates(inp, e, b, loss, DEFAULT_VARIANT) for e, b, loss in needs]
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def figures_section(inp: Inputs, metrics: pd.DataFrame) -> tuple[str, list[Check]]:
    final = {name: inp.final(name) for name in ("fig1", "fig3", "fig4", "fig6", "fig8")}
    final |= {name: inp.final(name) for name in ("fig10", "fig11")}
    all_checks: list[Check] = []
    out = ["## Figures", ""]

    def para(fig: str, body: list[str], checks: list[Check]):
        checks = [
            replace(c, verdict=provisional(c.verdict, settings_needed(inp, CHECK_NEEDS[fig])))
            for c in checks
        ]
        out.extend([f"### {FIGURES[fig]}", "", f"The paper: {PAPER_SAYS[fig]}.", ""])
        out.extend(body)
        if checks:
            out.extend(["", _checks_table(inp, checks)])
        out.append("")
        all_checks.extend(checks)

    para(
        "fig1",
        [_sweep_table(final["fig1"], "weight_decay", "weight decay", rho=True)],
        fig1_checks(inp, final["fig1"]),
    )
    if sentence := variants_sentence(final["fig1"], "bpr"):
        out.insert(len(out) - 1, "\n" + sentence)
    para(
        "fig2",
        ["Spearman ρ of item norm and train degree: the last column of Figure 1's table."],
        [magnitude_check(final["fig1"])],
    )
    para(
        "fig3",
        [_sweep_table(final["fig3"], "weight_decay", "weight decay", rho=True)],
        fig3_checks(inp, final["fig3"], final["fig1"]),
    )
    fig4 = final["fig4"]
    alpha = alpha_checks(metrics, fig4)
    para(
        "fig4",
        [_sweep_table(fig4[fig4["init"] == "prism"], "alpha", "α"), "", _fig4_reference(metrics)],
        alpha[:1],
    )
    para("fig5", ["Numbers: Figure 4's table."], alpha[1:])
    para("fig6", [fig6_table(final["fig6"])], [fig6_check(final["fig6"])])
    para(
        "fig7",
        [
            "Drawn from the theorem beside a Monte-Carlo simulation of mini-batch training (rule "
            "simulate, no training runs): `results/<preset>/figures/fig7.png`; the numbers are "
            'the theory rows of the claims table (README, "Theory").'
        ],
        [],
    )
    para(
        "fig8",
        [_sweep_table(final["fig8"], "weight_decay", "weight decay")],
        [lightgcn_check(final["fig8"])],
    )
    fig9 = pd.concat([inp.final("fig9"), inp.final("fig4")], ignore_index=True)
    para("fig9", [fig9_table(fig9)], [debias_check(fig9)])
    para(
        "fig10",
        [_sweep_table(final["fig10"], "weight_decay", "weight decay")],
        [popular_shift(final["fig10"], "fig10/popular-shift", "Figure 10")],
    )
    if sentence := variants_sentence(final["fig10"], "ssm"):
        out.insert(len(out) - 1, "\n" + sentence)
    para(
        "fig11",
        [_sweep_table(final["fig11"], "weight_decay", "weight decay")],
        [popular_shift(final["fig11"], "fig11/popular-shift", "Figure 11")],
    )
    return "\n".join(out), all_checks


def _checks_table(inp: Inputs, checks: list[Check]) -> str:
    return md_table(
        ["claim", "ours", "criterion", "verdict", "cause"],
        [
            [c.claim, c.ours, c.criterion, c.verdict, inp.cause(c.key, c.verdict) or "—"]
            for c in checks
        ],
    )


# -- claims ---------------------------------------------------------------------------------


def claim_metrics(inp: Inputs) -> pd.DataFrame:
    """The final runs of the claim experiments (default variant) as the claims module reads them."""
    parts = [inp.final(e) for e in CLAIM_EXPERIMENTS]
    parts = [p[p["variant"] == DEFAULT_VARIANT] for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=[*inp.rows.columns, "experiment"])
    return pd.concat(parts, ignore_index=True)


def claims_rows(inp: Inputs, metrics: pd.DataFrame) -> list[dict]:
    rows = (
        claims_mod.table1_claims(metrics)
        + claims_mod.alpha_claims(metrics)
        + [claims_mod.batched_claim(metrics), claims_mod.lightgcn_claim(metrics)]
        + [claims_mod.debias_claim(metrics)]
    )
    mag = magnitude_check(inp.final("fig1"))
    rows.append(
        {
            "claim": "Item magnitude follows popularity with weight decay 1e-6, weakly without",
            "paper": np.nan,
            "ours": mag.ours,
            "criterion": mag.criterion,
            "verdict": mag.verdict,
        }
    )
    for row in rows:
        if row["verdict"] == claims_mod.NOT_RUN:
            row["verdict"] = NOT_RUN
        needs = [v for k, v in CLAIM_NEEDS.items() if row["claim"].startswith(k)]
        if not needs:
            raise KeyError(f"claim {row['claim']!r} has no entry in CLAIM_NEEDS")
        row["verdict"] = provisional(row["verdict"], settings_needed(inp, needs[0]))
    return rows


def claims_section(inp: Inputs, rows: list[dict]) -> str:
    table = []
    for r in rows:
        ours = (
            r["ours"]
            if isinstance(r["ours"], str)
            else ("—" if pd.isna(r["ours"]) else f"{r['ours']:.2f}")
        )
        paper = "—" if pd.isna(r["paper"]) else f"{r['paper']:g}"
        key = f"claims/{slug(r['claim'])}"
        table.append(
            [
                r["claim"],
                paper,
                ours,
                r["criterion"] or "—",
                r["verdict"],
                inp.cause(key, r["verdict"]) or "—",
            ]
        )
    return "\n".join(
        [
            "## The paper's claims",
            "",
            f"The claims table of the workflow (`tables/claims.csv`), on the {inp.dataset} runs "
            "of the record only (the paper averages over four datasets).",
            "",
            md_table(["claim", "paper", "ours", "criterion", "verdict", "cause"], table),
        ]
    )


# -- time and cost --------------------------------------------------------------------------


def cost_section(inp: Inputs) -> str:
    out = ["## Cost", ""]
    if not inp.config:
        return "\n".join(out + [f"Preset `{inp.preset}` is not defined in config.yaml."])
    table = cost_table(inp.config, inp.dataset)
    cap = int(inp.config["train"]["max_epochs"])
    runs = int(table["runs"].sum())
    total = float(table["hours"].sum())
    upper = float((table["cap_epochs"] * table["s_per_epoch"]).sum() / 3600)
    passes = table["loss"].map(validation_passes)
    validation = float((table["epochs"] * passes).sum() * VALIDATION_SECONDS / 3600)
    out += [
        f"Estimate before running (`prism_repro.reproduction.cost_table`): {runs} runs; the sum "
        f"over runs of epochs x s/epoch = {total:.1f} h on {CORES} cores "
        f"({CORES * total:.1f} core-hours; validation every epoch is {validation:.1f} h of it); "
        f"every run at the {cap}-epoch cap: {upper:.1f} h. "
        f"Seconds per epoch (training + {VALIDATION_SECONDS} s validation, {CORES} cores, "
        "AVX-512): MF + BPR 0.41 and MF + DirectAU 4.47 measured (README, Benchmarks); SSM 3x "
        "BPR, MAWU 1.5x DirectAU, non-linear MF 1.5x and LightGCN 3x MF assumed; MACR scores its "
        f"13 c from one product per chunk ({validation_passes('macr'):g} passes an epoch). Epochs per run "
        "(early stopping included): PRISM 40 and no, batched or 1e-8 decay 30 (as measured on "
        "Gowalla), weight decay 1e-6 at lr 1e-3 250 (the paper's 249 on Gowalla; ours was still "
        "improving at 147 of 150), at lr 1e-2 60, 1e-4 100 (assumed).",
        "",
        md_table(
            ["model", "runs", "epochs (all runs)", "s/epoch", "hours"],
            [
                [
                    label(r.backbone, r.loss),
                    str(r.runs),
                    str(r.epochs),
                    f2(r.s_per_epoch),
                    f2(r.hours),
                ]
                for r in table.itertuples()
            ],
        ),
    ]
    done = inp.rows[inp.rows["preset"] == inp.preset]
    if len(done):
        out += [
            "",
            f"Measured so far: {len(done)} of {runs} runs, {hours(done['train_seconds'].sum())} "
            "of training (train seconds summed over runs; see Runs).",
        ]
        left, left_hours, measured = remaining_estimate(inp)
        rates = "; ".join(
            f"{label(b, loss)} {f2(m)} (estimate {f2(e)})" for (b, loss), (m, e) in measured.items()
        )
        out += [
            "",
            "Measured seconds per epoch (median over recorded runs, each run one thread, two runs "
            f"side by side as the record runs them; the estimate is for one {CORES}-core run): "
            f"{rates}.",
            "",
            f"Remaining: {left} runs, about {left_hours:.1f} h on {CORES} cores at the measured "
            "rates (two runs at a time; models not measured yet at their estimate scaled by the "
            f"median measured/estimated ratio, {rate_scale(measured):.2f}x; epochs per run as "
            "recorded runs of the same model, variant, lr and decay class took, the median, "
            "else the estimate's).",
        ]
    return "\n".join(out)


def rate_scale(pairs: Mapping) -> float:
    """Median over models of measured / estimated seconds per epoch ({model: (measured,
    estimate)}); 1 before anything is measured."""
    return float(np.median([m / e for m, e in pairs.values()])) if pairs else 1.0


def _kin(spec: RunSpec) -> tuple:
    """Runs expected to stop after about as many epochs: same model, variant, lr, decay class."""
    return (spec.backbone, spec.loss, spec.variant, spec.lr, epoch_class(spec))


def remaining_estimate(inp: Inputs) -> tuple[int, float, dict]:
    """The preset's runs not in the record yet, and the hours they should take at the seconds
    per epoch measured so far (per model; others at the estimate times the median ratio of
    measured to estimated) and the epochs their recorded kin took (the median; else the
    estimate's). Returns (runs, hours, {(backbone, loss): (measured, estimate)})."""
    from prism_repro.grid import all_candidate_runs

    cap = int(inp.config["train"]["max_epochs"])
    done = inp.rows[inp.rows["preset"] == inp.preset]
    measured = done.groupby(["backbone", "loss"])["seconds_per_epoch"].median().to_dict()
    specs = [RunSpec.parse(run) for run in done["run"]]
    estimates = {(spec.backbone, spec.loss): seconds_per_epoch(spec) for spec in specs}
    pairs = {key: (measured[key], estimates[key]) for key in sorted(measured)}
    scale = rate_scale(pairs)
    kin = done.assign(_kin=[_kin(spec) for spec in specs])
    epochs_seen = kin.groupby("_kin")["epochs_run"].median().to_dict()
    recorded = set(done["run"])
    left, seconds = 0, 0.0
    for dataset, spec in all_candidate_runs(inp.config):
        if dataset != inp.dataset or spec.run_id in recorded:
            continue
        rate = measured.get((spec.backbone, spec.loss), seconds_per_epoch(spec) * scale)
        left += 1
        seconds += epochs_seen.get(_kin(spec), expected_epochs(spec, cap)) * rate
    return left, seconds / 3600 / CORES, pairs


def runs_section(inp: Inputs) -> str:
    record = inp.record
    out = ["## Runs", ""]
    if record.empty:
        return "\n".join(out + ["No run recorded yet."])
    total = record["train_seconds"].sum()
    by = record.groupby(["preset", "device", "cpu_model"], sort=True)["train_seconds"].agg(
        ["count", "sum"]
    )
    out.append(
        f"{len(record)} run(s), {hours(total)} of training in all (train seconds: epochs and "
        "validation, summed over the processes that worked on a run). By preset and machine:"
    )
    out += [
        "",
        md_table(
            ["preset", "device", "CPU", "runs", "train time"],
            [[p, d, c, str(int(n)), hours(s)] for (p, d, c), (n, s) in by.iterrows()],
        ),
        "",
        md_table(
            [
                "dataset",
                "run",
                "preset",
                "experiments",
                "test NDCG@20",
                "best / stopped epoch",
                "train time",
                "s/epoch",
                "device",
                "commit",
                "finished",
            ],
            [
                [
                    r.dataset,
                    f"`{r.run}`",
                    r.preset,
                    r.experiments or "—",
                    "diverged" if r.diverged else f4(r.test_ndcg),
                    f"{intf(r.best_epoch)} / {intf(r.epochs_run)} of {intf(r.max_epochs)}",
                    f"{r.train_seconds / 60:.1f} min" if pd.notna(r.train_seconds) else "—",
                    f2(r.seconds_per_epoch),
                    r.device,
                    r.git_commit,
                    r.finished,
                ]
                for r in record.itertuples()
            ],
        ),
    ]
    return "\n".join(out)


def setup_section(inp: Inputs) -> str:
    cfg = inp.config or {}
    train = cfg.get("train", {})
    preset = inp.preset
    return "\n".join(
        [
            "## How the record is made",
            "",
            "```bash",
            f"snakemake -c2 --config preset={preset} mirror=/data/mirror   # trains; merges each "
            "finished run into the record",
            f"python -m prism_repro record --results results/{preset} --out {inp.record_path}",
            f"python -m prism_repro reproduction --record {inp.record_path} --out "
            "docs/reproduction.md --readme README.md",
            "```",
            "",
            "The record (`" + inp.record_path + "`) has one row per finished run: settings, "
            "validation and test NDCG@20 overall and by popularity, Spearman ρ of item norm and "
            "degree, the epochs at which dot-product and cosine validation reach 95 % of their "
            "best, best and stopped epoch, train seconds, device, CPU model, commit, date. The "
            "merge is idempotent (a run already recorded is replaced), so the record grows over "
            "several sittings and machines; commit it after each. A commit ending in `-dirty` "
            "means the run's code (src, workflow, Snakefile, config.yaml, pyproject.toml) differed "
            "from that commit. On rows finished before 2026-11-30 17:00 UTC any change in the "
            "checkout set it, the record's own growing runs.csv included, so there it does not "
            "by itself say that the code differed.",
            "",
            f"Choices (the paper tunes lr x weight decay x gamma on validation with 3 seeds; "
            f"preset `{preset}` fits a CPU budget, see Cost):",
            "",
            f"- seed {_seeds(cfg)}; DirectAU's gamma 1 (MF + DirectAU "
            "with gamma 1 landed on the paper's tuned cell before); MAWU's published Gowalla "
            "gammas;",
            "- Table 1's weight-decay cells: lr tuned over {1e-2, 1e-3} on validation at weight "
            "decay 1e-6, the strength the paper's figures point to (not tuned over weight decay: "
            "a budget limit);",
            "- PRISM cells and the alpha sweep: lr 1e-2 only (under Adam PRISM's large initial "
            "norms barely turn at 1e-3: README, PRISM and the learning rate);",
            "- figure sweeps over weight decay {0, 1e-8, 1e-6, 1e-4} at lr 1e-3 (the released "
            "script's lr and the measured best for weight decay), so their 1e-6 point is Table "
            "1's lr 1e-3 candidate and Figure 6's curves are Figure 1's DirectAU runs; LightGCN "
            "(Figure 8, 3x an MF epoch) at lr 1e-2;",
            f"- at most {train.get('max_epochs', '—')} epochs, early stopping with patience "
            f"{train.get('patience', '—')} on validation NDCG@20 (weight decay runs converge "
            "slowly: the paper reports 249 epochs on Gowalla);",
            "- BPR (Figure 1) and SSM (Table 1, Figure 10) runs also under the `released` variant "
            "(negatives from the batch, 20 SSM negatives, and the other released-code keys of "
            "docs/paper-vs-code.md), in experiments no figure reads, to tell which negative pool "
            "reproduces the paper;",
            "- Figure 9's baselines at lr 1e-3 and weight decay 1e-6 (BPR and DirectAU are Figure "
            "1's runs): ReSN's weight over {1e-5, 1e-4} and IPL's over {0.1, 1} chosen on "
            "validation, MACR with c chosen on validation inside its run; PRISM + DirectAU with "
            "alpha chosen on validation from Figure 4's runs;",
            "- non-linear MF's Table 1 cells, PRISM and weight decay (lr tuned as above), also "
            "with the released code's tower alone (variant `affine`: no ReLU, the released "
            "code's bug; docs/paper-vs-code.md), to tell whether the paper's NL-MF numbers come "
            "from it and to compare PRISM with weight decay like for like under it.",
        ]
    )


def _seeds(cfg: Mapping) -> str:
    """The seeds most experiments use, and the experiments that use others (investigations)."""
    by_experiment = {
        name: tuple(exp.get("seeds") or [123])
        for name, exp in (cfg.get("experiments") or {}).items()
    }
    if not by_experiment:
        return "123"
    common = Counter(by_experiment.values()).most_common(1)[0][0]
    grouped: dict[tuple, list[str]] = {}
    for name, seeds in by_experiment.items():
        if seeds != common:
            grouped.setdefault(seeds, []).append(f"`{name}`")
    others = [
        f"{', '.join(map(str, seeds))} in {' and '.join(names)}" for seeds, names in grouped.items()
    ]
    return ", ".join(map(str, common)) + (f"; seeds {'; '.join(others)}" if others else "")


# -- the document ---------------------------------------------------------------------------


def render(inp: Inputs) -> tuple[str, str]:
    """(docs/reproduction.md, the README block's body)."""
    cells = table1_cells(inp)
    metrics = claim_metrics(inp)
    figures, checks = figures_section(inp, metrics)
    claim_rows = claims_rows(inp, metrics)
    counts = cells["verdict"].value_counts()
    mine = inp.rows[inp.rows["preset"] == inp.preset]
    planned = int(cost_table(inp.config, inp.dataset)["runs"].sum()) if inp.config else 0
    status = [
        "## Status",
        "",
        f"- Runs: {len(mine)} of the {planned} runs of preset `{inp.preset}` recorded"
        + (
            f"; {len(inp.rows) - len(mine)} {inp.dataset} run(s) from other presets used where "
            "the preset has none"
            if len(inp.rows) > len(mine)
            else ""
        )
        + ".",
        f"- Table 1, {inp.dataset}: "
        + ", ".join(f"{counts.get(v, 0)} {v}" for v in (MATCH, MISS, NOT_RUN))
        + f", {cells['verdict'].str.startswith(PROVISIONAL).sum()} {PROVISIONAL}"
        + (
            f", {counts[NOT_PLANNED]} {NOT_PLANNED} (a variant's other method, for comparison)"
            if counts.get(NOT_PLANNED)
            else ""
        )
        + f" (of {len(cells)} cells).",
        "- Figure checks: " + _count([c.verdict for c in checks]) + ".",
        "- Claims: " + _count([r["verdict"] for r in claim_rows]) + ".",
        f"- Training time: {hours(inp.record['train_seconds'].sum())} over "
        f"{len(inp.record)} recorded run(s).",
    ]
    doc = "\n\n".join(
        [
            f"# Reproduction record: {inp.dataset}",
            "<!-- Generated by `python -m prism_repro reproduction` from "
            f"{inp.record_path}, {inp.investigations_path}, config.yaml and the paper's "
            "published numbers (src/prism_repro/published/). Do not edit: a test regenerates "
            "it. -->",
            f"Our runs against the paper: {PAPER}. Numbers are test NDCG@20 unless said "
            "otherwise; popularity groups are items by train degree: top 5 % (popular), next "
            "15 % (neutral), bottom 80 % (unpopular). A miss's cause comes from "
            f"`{inp.investigations_path}` under the key the table shows.",
            "\n".join(status),
            table1_section(inp, cells),
            figures,
            claims_section(inp, claim_rows),
            setup_section(inp),
            cost_section(inp),
            runs_section(inp),
        ]
    )
    return doc.rstrip() + "\n", readme_block(inp, cells, checks, claim_rows)


def _count(verdicts: list[str]) -> str:
    order = [REPRODUCED, NOT_REPRODUCED, NOT_RUN]
    n = sum(v.startswith(PROVISIONAL) for v in verdicts)
    return ", ".join(f"{verdicts.count(v)} {v}" for v in order) + f", {n} {PROVISIONAL}"


def readme_block(inp: Inputs, cells: pd.DataFrame, checks, claim_rows) -> str:
    rows = [
        [
            label(r.backbone, r.loss),
            METHOD_LABELS[r.method] + ("" if r.variant == DEFAULT_VARIANT else f" [{r.variant}]"),
            f4(r.ours),
            f"{f4(r.paper_mean)} ± {f4(r.paper_std)}",
            r.verdict,
        ]
        for r in cells.itertuples()
    ]
    mine = inp.rows[inp.rows["preset"] == inp.preset]
    return "\n".join(
        [
            f"**{inp.dataset} reproduction record** (preset `{inp.preset}`; generated from "
            f"`{inp.record_path}` by `python -m prism_repro reproduction`; every figure, claim and "
            "run in [docs/reproduction.md](docs/reproduction.md)): "
            f"{len(mine)} run(s) of the preset recorded, "
            f"{hours(inp.record['train_seconds'].sum())} of training; figure checks "
            f"{_count([c.verdict for c in checks])}; claims "
            f"{_count([r['verdict'] for r in claim_rows])}.",
            "",
            md_table(["Table 1 cell", "method", "ours", "paper", "verdict"], rows),
        ]
    )


def replace_block(text: str, body: str, where: str = "README.md") -> str:
    """``text`` with the part between the reproduction markers replaced by ``body``."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise UserError(f"{where}: needs one '{START}' line followed by one '{END}' line")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{body.rstrip()}\n{END}{tail}"


def load_investigations(path: Path) -> dict:
    import yaml

    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise UserError(
            f"{path}: expected a mapping of keys (as docs/reproduction.md shows) to causes"
        )
    return {k: v for k, v in data.items() if v}


QUOTED_NDCG = re.compile(r"(?<![\d.])\d\.\d{4}(?![\d])")


def unsourced_numbers(investigations: Mapping, record: pd.DataFrame) -> list[tuple[str, str]]:
    """(key, number) for each four-decimal number a cause quotes that is neither a metric of the
    record nor a mean or std of the paper's Table 1: causes are typed by hand, so a rerun or a
    typo must not leave them quoting numbers nothing backs."""
    known: set[str] = set()
    paper = published("table1")
    for frame in (record, paper):
        for column in frame.select_dtypes("number").columns:
            known.update(f"{x:.4f}" for x in frame[column].dropna())
    return [
        (key, token)
        for key, text in investigations.items()
        for token in QUOTED_NDCG.findall(str(text))
        if token not in known
    ]


def build(args: argparse.Namespace) -> tuple[str, str]:
    config = preset_config(args.preset, args.config_file, args.schema)
    record = read_record(args.record)
    investigations = load_investigations(args.investigations)
    stale = unsourced_numbers(investigations, record)
    if stale:
        listed = "; ".join(f"{key}: {token}" for key, token in stale)
        raise UserError(
            f"{args.investigations}: causes quote numbers found neither in {args.record} nor in "
            f"the paper's Table 1 (a rerun changed them, or a typo): {listed}"
        )
    inp = Inputs(
        record=record,
        investigations=investigations,
        config=config,
        preset=args.preset,
        dataset=args.dataset,
        record_path=str(args.record),
        investigations_path=str(args.investigations),
    )
    return render(inp)


def _command(args: argparse.Namespace) -> None:
    doc, block = build(args)
    write_text(doc, args.out)
    if args.readme:
        write_text(replace_block(args.readme.read_text(), block, str(args.readme)), args.readme)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--record", type=Path, default=Path("reference/gowalla-record/runs.csv"))
    p.add_argument(
        "--investigations",
        type=Path,
        default=Path("reference/gowalla-record/investigations.yaml"),
        help="causes of misses, keyed as the document shows (missing file: none yet)",
    )
    p.add_argument("--preset", default="gowalla-record")
    p.add_argument("--dataset", default="Gowalla")
    p.add_argument("--config-file", type=Path, default=Path("config.yaml"))
    p.add_argument("--schema", type=Path, default=Path("workflow/schemas/config.schema.yaml"))


def register(sub) -> None:
    p = sub.add_parser(
        "reproduction", help="docs/reproduction.md and README's summary from the run record"
    )
    add_arguments(p)
    p.add_argument("--out", type=Path, default=Path("docs/reproduction.md"))
    p.add_argument("--readme", type=Path, default=None, help="README whose marked block to rewrite")
    p.set_defaults(func=_command)
