"""Table 2: users, items, interactions and density of each dataset, beside the paper's values.

Counts come from ``interactions.parquet`` (users and items that have at least one interaction after
preprocessing; interactions = distinct user-item pairs). Density is interactions / (users x items),
in percent, rounded to two decimals as the paper prints it. The paper's row
(``published/table2.csv``, packaged) and the difference (ours - paper) sit beside each measured
value; a dataset the paper does not have (e.g. Synthetic) gets empty paper columns.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

import pandas as pd

from prism_repro.data.interactions import read_interactions
from prism_repro.errors import UserError
from prism_repro.io import write_text

COLUMNS = ("users", "items", "interactions", "density_percent")
DENSITY_DECIMALS = 2


def published_table2() -> pd.DataFrame:
    """The paper's Table 2, indexed by dataset name."""
    with resources.files("prism_repro").joinpath("published/table2.csv").open() as handle:
        return pd.read_csv(handle).set_index("dataset")


def dataset_stats(path: Path) -> dict:
    """Users, items, interactions, density (percent) of one interactions.parquet."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    frame, meta = read_interactions(path)
    users = int(meta.get("num_users", frame["user"].nunique()))
    items = int(meta.get("num_items", frame["item"].nunique()))
    interactions = int(len(frame))
    if users == 0 or items == 0:
        raise UserError(f"{path}: no interactions")
    density = round(100.0 * interactions / (users * items), DENSITY_DECIMALS)
    return {
        "users": users,
        "items": items,
        "interactions": interactions,
        "density_percent": density,
    }


def table2(names: list[str], paths: list[Path]) -> pd.DataFrame:
    """One row per dataset: measured value, paper value and difference for each statistic."""
    if len(names) != len(paths):
        raise UserError(f"got {len(names)} dataset names for {len(paths)} interaction files")
    if len(set(names)) != len(names):
        raise UserError(f"dataset names repeat: {', '.join(names)}")
    paper = published_table2()
    rows = []
    for name, path in zip(names, paths):
        ours = dataset_stats(path)
        row = {"dataset": name}
        for col in COLUMNS:
            published = paper.at[name, col] if name in paper.index else None
            row[col] = ours[col]
            row[f"{col}_paper"] = published
            if published is None:
                row[f"{col}_diff"] = None
            elif col == "density_percent":
                row[f"{col}_diff"] = round(ours[col] - float(published), DENSITY_DECIMALS)
            else:
                row[f"{col}_diff"] = int(ours[col] - int(published))
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in COLUMNS:
        if col != "density_percent":
            for suffix in ("_paper", "_diff"):
                frame[col + suffix] = frame[col + suffix].astype("Int64")
    return frame


def _fmt(value, decimals: int | None) -> str:
    if value is None or pd.isna(value):
        return "–"
    if decimals is None:
        return f"{int(value):,}"
    return f"{float(value):.{decimals}f}"


def _fmt_diff(value, decimals: int | None) -> str:
    if value is None or pd.isna(value):
        return "–"
    if decimals is None:
        return f"{int(value):+,}" if value else "0"
    return f"{float(value):+.{decimals}f}" if round(float(value), decimals) else "0"


def to_markdown(frame: pd.DataFrame) -> str:
    """Markdown table: for each statistic the measured value, the paper's and the difference."""
    titles = {
        "users": "users",
        "items": "items",
        "interactions": "interactions",
        "density_percent": "density %",
    }
    header = ["dataset"]
    for col in COLUMNS:
        header += [titles[col], f"{titles[col]} (paper)", "Δ"]
    lines = [
        "Table 2: dataset statistics, ours beside the paper's (Δ = ours − paper).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for row in frame.to_dict("records"):
        cells = [row["dataset"], *_cells(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cells(row: dict) -> list[str]:
    cells = []
    for col in COLUMNS:
        decimals = DENSITY_DECIMALS if col == "density_percent" else None
        cells += [
            _fmt(row[col], decimals),
            _fmt(row[f"{col}_paper"], decimals),
            _fmt_diff(row[f"{col}_diff"], decimals),
        ]
    return cells


def to_latex(frame: pd.DataFrame) -> str:
    """A booktabs table with the Markdown table's cells."""

    def tex(cell: str) -> str:
        return cell.replace(",", "{,}").replace("–", "--").replace("_", r"\_")

    groups = " & ".join(
        rf"\multicolumn{{3}}{{c}}{{{title}}}"
        for title in ("users", "items", "interactions", r"density (\%)")
    )
    lines = [
        r"\begin{table}",
        r"\caption{Dataset statistics, ours beside the paper's ($\Delta$ = ours $-$ paper).}",
        r"\begin{tabular}{l" + "rrr" * len(COLUMNS) + "}",
        r"\toprule",
        f" & {groups} \\\\",
        " & " + " & ".join([r"ours & paper & $\Delta$"] * len(COLUMNS)) + r" \\",
        r"\midrule",
    ]
    for row in frame.to_dict("records"):
        lines.append(
            " & ".join([tex(str(row["dataset"]))] + [tex(c) for c in _cells(row)]) + r" \\"
        )
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table2(
    frame: pd.DataFrame, out_csv: Path, out_md: Path, out_tex: Path | None = None
) -> None:
    """Every text is built before the first file is written: an error leaves no partial set."""
    texts = {out_csv: frame.to_csv(index=False, float_format=f"%.{DENSITY_DECIMALS}f")}
    texts[out_md] = to_markdown(frame)
    if out_tex is not None:
        texts[out_tex] = to_latex(frame)
    for path, text in texts.items():
        write_text(text, path)


def _command(args: argparse.Namespace) -> None:
    frame = table2(args.datasets, args.inputs)
    write_table2(frame, args.out_csv, args.out_md, args.out_tex)


def register(sub) -> None:
    p = sub.add_parser(
        "table2",
        help="dataset statistics beside the paper's Table 2 (CSV, Markdown, optionally LaTeX)",
    )
    p.add_argument(
        "--in",
        dest="inputs",
        type=Path,
        nargs="+",
        required=True,
        help="interactions.parquet per dataset",
    )
    p.add_argument(
        "--datasets", nargs="+", required=True, help="dataset names, in the order of --in"
    )
    p.add_argument("--out-csv", type=Path, required=True)
    p.add_argument("--out-md", type=Path, required=True)
    p.add_argument("--out-tex", type=Path, default=None)
    p.set_defaults(func=_command)
