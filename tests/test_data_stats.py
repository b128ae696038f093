"""Table 2 (dataset statistics beside the paper's) on small fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prism_repro import cli
from prism_repro.data.interactions import finalize_interactions, write_interactions
from prism_repro.data.stats import dataset_stats, published_table2, table2, to_markdown
from prism_repro.errors import UserError


def interactions(path: Path, pairs: list[tuple[int, int]]) -> Path:
    users, items = zip(*pairs)
    frame, meta = finalize_interactions(np.array(users), np.array(items))
    write_interactions(frame, meta, path)
    return path


def test_published_table2_is_packaged():
    paper = published_table2()
    assert list(paper.index) == ["MovieLens1M", "Gowalla", "Yelp2018", "AmazonBook"]
    assert paper.loc["Gowalla"].tolist() == [29858, 40981, 1027370, 0.08]


def test_dataset_stats(tmp_path):
    path = interactions(tmp_path / "i.parquet", [(0, 0), (0, 1), (1, 1), (2, 3), (2, 3)])
    # 3 users, 3 items, 4 distinct pairs: density 4 / 9 = 44.44 %
    assert dataset_stats(path) == {
        "users": 3,
        "items": 3,
        "interactions": 4,
        "density_percent": 44.44,
    }


def test_table2_puts_the_paper_beside_ours(tmp_path):
    gowalla = interactions(tmp_path / "g.parquet", [(0, 0), (0, 1), (1, 1)])
    synthetic = interactions(tmp_path / "s.parquet", [(0, 0), (1, 0)])
    frame = table2(["Gowalla", "Synthetic"], [gowalla, synthetic])
    g = frame.set_index("dataset").loc["Gowalla"]
    assert (g["users"], g["users_paper"], g["users_diff"]) == (2, 29858, 2 - 29858)
    assert (g["interactions"], g["interactions_paper"], g["interactions_diff"]) == (
        3,
        1027370,
        3 - 1027370,
    )
    assert g["density_percent"] == 75.0 and g["density_percent_diff"] == pytest.approx(75.0 - 0.08)
    s = frame.set_index("dataset").loc["Synthetic"]
    assert s["users"] == 2 and pd.isna(s["users_paper"]) and pd.isna(s["density_percent_diff"])

    md = to_markdown(frame)
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| dataset | users | users (paper) | Δ |")
    assert (
        rows[1]
        == "| Gowalla | 2 | 29,858 | -29,856 | 2 | 40,981 | -40,979 | 3 | 1,027,370 | -1,027,367 | 75.00 | 0.08 | +74.92 |"
    )
    assert rows[2] == "| Synthetic | 2 | – | – | 1 | – | – | 2 | – | – | 100.00 | – | – |"


def test_cli_writes_csv_and_markdown(tmp_path, capsys):
    path = interactions(tmp_path / "g.parquet", [(0, 0), (1, 1)])
    out_csv, out_md = tmp_path / "tables" / "table2.csv", tmp_path / "tables" / "table2.md"
    argv = [
        "table2",
        "--datasets",
        "MovieLens1M",
        "--in",
        str(path),
        "--out-csv",
        str(out_csv),
        "--out-md",
        str(out_md),
    ]
    assert cli.main(argv) == 0
    csv = pd.read_csv(out_csv)
    assert csv.columns.tolist() == [
        "dataset",
        *(
            f"{c}{s}"
            for c in ("users", "items", "interactions", "density_percent")
            for s in ("", "_paper", "_diff")
        ),
    ]
    assert csv.loc[0, "users_paper"] == 6040 and csv.loc[0, "items_diff"] == 2 - 3629
    assert "| MovieLens1M | 2 | 6,040 |" in out_md.read_text()


@pytest.mark.parametrize(
    "datasets, n_files, message",
    [
        (["Gowalla", "Yelp2018"], 1, "got 2 dataset names for 1 interaction files"),
        (["Gowalla", "Gowalla"], 2, "dataset names repeat"),
    ],
)
def test_bad_arguments(tmp_path, datasets, n_files, message):
    paths = [interactions(tmp_path / f"{i}.parquet", [(0, 0)]) for i in range(n_files)]
    with pytest.raises(UserError, match=message):
        table2(datasets, paths)


def test_missing_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    out_csv, out_md = tmp_path / "t" / "table2.csv", tmp_path / "t" / "table2.md"
    argv = [
        "table2",
        "--datasets",
        "Gowalla",
        "--in",
        str(tmp_path / "nope.parquet"),
        "--out-csv",
        str(out_csv),
        "--out-md",
        str(out_md),
    ]
    assert cli.main(argv) == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope.parquet'}: no such file"
    assert not out_csv.exists() and not out_md.exists()


def test_cli_optional_latex(tmp_path):
    path = interactions(tmp_path / "g.parquet", [(0, 0), (1, 1)])
    out = {ext: tmp_path / f"table2.{ext}" for ext in ("csv", "md", "tex")}
    argv = ["table2", "--datasets", "Gowalla", "Synthetic", "--in", str(path), str(path)]
    argv += ["--out-csv", str(out["csv"]), "--out-md", str(out["md"]), "--out-tex", str(out["tex"])]
    assert cli.main(argv) == 0
    tex = out["tex"].read_text()
    assert tex.startswith("\\begin{table}") and "\\toprule" in tex
    assert "Gowalla & 2 & 29{,}858 & -29{,}856 &" in tex
    assert "Synthetic & 2 & -- & -- &" in tex
