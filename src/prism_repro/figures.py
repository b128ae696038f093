"""Figures from aggregated metrics (parquet in, PNG + PDF out); no training code here."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from prism_repro.io import atomic_path  # noqa: E402
from prism_repro.runspec import fmt_num  # noqa: E402

log = logging.getLogger("prism_repro.figures")
STRATA_LABELS = {"ndcg": "overall", "ndcg_popular": "popular", "ndcg_neutral": "neutral", "ndcg_unpopular": "unpopular"}
LOSS_LABELS = {"bpr": "BPR", "ssm": "SSM", "directau": "DirectAU", "mawu": "MAWU"}


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


def ndcg_vs_weight_decay(metrics: pd.DataFrame) -> plt.Figure:
    """Figure 1 layout: test NDCG@k overall and per popularity group against weight decay.

    Rows are losses, columns datasets; lines are means over seeds with +-1 std bands.
    """
    metrics = drop_diverged(metrics, "ndcg_vs_weight_decay")
    long = metrics.melt(
        id_vars=["dataset", "loss", "weight_decay", "seed"],
        value_vars=[f"test_{m}" for m in STRATA_LABELS],
        var_name="group",
        value_name="NDCG",
    )
    long["group"] = long["group"].str.removeprefix("test_").map(STRATA_LABELS)
    order = sorted(long["weight_decay"].unique())
    long["weight decay"] = pd.Categorical(long["weight_decay"].map(fmt_num), [fmt_num(w) for w in order], ordered=True)
    datasets = list(dict.fromkeys(metrics["dataset"]))
    losses = list(dict.fromkeys(metrics["loss"]))
    fig, axes = plt.subplots(len(losses), len(datasets), figsize=(3.4 * len(datasets), 2.8 * len(losses)), squeeze=False, sharex=True)
    for r, loss in enumerate(losses):
        for c, dataset in enumerate(datasets):
            ax = axes[r][c]
            part = long[(long["loss"] == loss) & (long["dataset"] == dataset)]
            sns.lineplot(data=part, x="weight decay", y="NDCG", hue="group", hue_order=list(STRATA_LABELS.values()),
                         errorbar="sd", marker="o", ax=ax, legend=(r == 0 and c == len(datasets) - 1))
            ax.set_title(f"{LOSS_LABELS.get(loss, loss)} - {dataset}")
            ax.set_ylabel(f"test NDCG@{int(metrics['k'].iloc[0])}" if c == 0 else "")
    if axes[0][-1].get_legend():
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), title="items")
    fig.tight_layout()
    return fig


FIGURES = {"fig1": ndcg_vs_weight_decay}


def _command(args: argparse.Namespace) -> None:
    sns.set_theme(style=args.style, context=args.context)
    metrics = pd.concat([pd.read_parquet(p) for p in args.inputs], ignore_index=True)
    fig = FIGURES[args.figure](metrics)
    save(fig, args.out_png, args.out_pdf, args.dpi)


def register(sub) -> None:
    p = sub.add_parser("figure", help="draw one of the paper's figures from aggregated metrics")
    p.add_argument("figure", choices=sorted(FIGURES))
    p.add_argument("--in", dest="inputs", type=Path, nargs="+", required=True)
    p.add_argument("--out-png", type=Path, required=True)
    p.add_argument("--out-pdf", type=Path, required=True)
    p.add_argument("--style", default="whitegrid")
    p.add_argument("--context", default="paper")
    p.add_argument("--dpi", type=int, default=150)
    p.set_defaults(func=_command)
