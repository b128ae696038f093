"""Table 1 and aggregation on fabricated metrics: means, stds, % diff against the paper's cells."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from prism_repro.aggregate import concat
from prism_repro.cli import main
from prism_repro.runspec import RunSpec
from prism_repro.table1 import percent_diff, table1
from prism_repro.tables import runs_table, table1_display

EXPERIMENT_OF_INIT = {"xavier": "table1_wd", "prism": "table1_prism"}


def metric_rows(run: str, test_ndcg, dataset="Gowalla", diverged=(), experiment=None) -> list:
    """One final-run metrics row per seed of ``run`` (its ``_s<seed>`` replaced), as aggregate
    writes them; ``test_ndcg`` holds one value per seed 123, 246, 492, ..."""
    base = RunSpec.parse(run)
    rows = []
    for n, value in enumerate(test_ndcg):
        spec = dataclasses.replace(base, seed=123 * 2**n)
        rows.append(
            {
                "experiment": experiment or EXPERIMENT_OF_INIT[spec.init],
                "dataset": dataset,
                "run": spec.run_id,
                **spec.as_dict(),
                "best_epoch": 10 + n,
                "epochs_run": 20 + n,
                "stop_reason": "early_stopping",
                "diverged": n in diverged,
                "val_ndcg": value,
                "test_ndcg": value,
                "test_ndcg_popular": value / 2,
                "test_ndcg_neutral": value / 4,
                "test_ndcg_unpopular": value / 4,
                "train_seconds": 1.0,
            }
        )
    return rows


WD_RUN = "mf_directau-g2_full1e-06_xavier_lr0.001_s123"
PRISM_RUN = "mf_directau-g1_none_prism1_lr0.01_s123"


def gowalla_cell(wd=(0.1173, 0.1176, 0.1179), prism=(0.1210, 0.1210, 0.1210)) -> pd.DataFrame:
    return pd.DataFrame(metric_rows(WD_RUN, wd) + metric_rows(PRISM_RUN, prism))


def row(table, method, backbone="MF", loss="DirectAU", dataset="Gowalla"):
    pick = table[
        (table["method"] == method)
        & (table["backbone"] == backbone)
        & (table["loss"] == loss)
        & (table["dataset"] == dataset)
    ]
    assert len(pick) == 1, (method, backbone, loss, dataset, table)
    return pick.iloc[0]


def test_percent_diff_is_prism_minus_wd_over_prism():
    # the paper's MF + DirectAU Gowalla cell: 0.1176 (tuned WD) against 0.1210 (PRISM) -> +2.81 %
    assert percent_diff(0.1210, 0.1176) == pytest.approx(0.34 / 12.1 * 100)
    assert round(percent_diff(0.1210, 0.1176), 2) == 2.81
    assert percent_diff(0.1176, 0.1210) == pytest.approx(-0.34 / 11.76 * 100)
    assert math.isnan(percent_diff(0.0, 0.1))


def test_table1_mean_std_and_the_papers_gowalla_cell():
    table = table1(gowalla_cell())
    wd, prism, pct = row(table, "tuned_wd"), row(table, "prism"), row(table, "pct_diff")
    assert wd["ndcg20_mean"] == pytest.approx(0.1176)
    assert wd["ndcg20_std"] == pytest.approx(0.0003)  # sample std (ddof 1) of +-0.0003
    assert prism["ndcg20_mean"] == pytest.approx(0.1210) and prism["ndcg20_std"] == 0
    assert wd["seeds"] == 3 and prism["seeds"] == 3
    # the settings chosen, and the paper's numbers beside ours
    assert (wd["lr"], wd["weight_decay"], wd["gamma"]) == (0.001, 1e-6, 2.0)
    assert (wd["paper_mean"], wd["paper_std"]) == (0.1176, 0.0003)
    assert (prism["paper_mean"], prism["paper_std"]) == (0.1210, 0.0)
    assert wd["diff"] == pytest.approx(0.0, abs=1e-12)
    # % diff: ours equals the paper's +2.81 %, positive because PRISM is the better
    assert pct["ndcg20_mean"] == pytest.approx(2.8099, abs=1e-4)
    assert pct["paper_mean"] == pytest.approx(2.8099, abs=1e-4)
    assert table["method"].tolist() == ["tuned_wd", "prism", "pct_diff"]
    shown = table1_display(table).set_index("method")["Gowalla"]
    assert shown["pct_diff"] == "+2.81 % (+2.81 %)"
    assert shown["tuned_wd"] == "0.1176 ± 0.0003 (0.1176 ± 0.0003)"


def test_table1_percent_diff_is_negative_when_tuned_decay_wins():
    table = table1(gowalla_cell(wd=(0.13, 0.13, 0.13), prism=(0.12, 0.12, 0.12)))
    pct = row(table, "pct_diff")
    assert pct["ndcg20_mean"] == pytest.approx((0.12 - 0.13) / 0.12 * 100)
    assert pct["diff"] == pytest.approx(pct["ndcg20_mean"] - 0.34 / 12.1 * 100)
    assert table1_display(table).set_index("method").at["pct_diff", "Gowalla"].startswith("-8.33 %")


def test_table1_leaves_out_diverged_runs_and_other_experiments():
    metrics = pd.DataFrame(
        metric_rows(WD_RUN, (0.10, 0.12, 0.99), diverged=(2,))
        + metric_rows(PRISM_RUN, (0.12,))
        + metric_rows(WD_RUN, (0.5,), experiment="fig1")
    )
    table = table1(metrics)
    wd = row(table, "tuned_wd")
    assert wd["ndcg20_mean"] == pytest.approx(0.11) and wd["seeds"] == 2
    assert wd["ndcg20_std"] == pytest.approx(np.std([0.10, 0.12], ddof=1))
    assert row(table, "prism")["ndcg20_std"] == 0.0  # one seed: no spread, not NaN


def test_table1_cells_without_both_methods_have_no_percent_diff():
    metrics = pd.DataFrame(
        metric_rows(WD_RUN, (0.1,)) + metric_rows(PRISM_RUN, (0.1,), dataset="Yelp2018")
    )
    table = table1(metrics)
    assert "pct_diff" not in set(table["method"])
    assert row(table, "prism", dataset="Yelp2018")["paper_mean"] == 0.0745


def test_runs_table_sorts_by_experiment_dataset_and_run():
    metrics = pd.DataFrame(metric_rows(WD_RUN, (0.1, 0.2)) + metric_rows(PRISM_RUN, (0.3,)))
    table = runs_table(metrics.assign(extra=1).iloc[::-1])
    assert "extra" not in table
    assert table["experiment"].tolist() == ["table1_prism", "table1_wd", "table1_wd"]
    assert table["run"].tolist()[1:] == sorted(table["run"].tolist()[1:])


def per_run_files(tmp_path, rows, kind):
    paths = []
    for i, r in enumerate(rows):
        paths.append(tmp_path / f"{kind}{i}.parquet")
        pd.DataFrame([r]).to_parquet(paths[-1])
    return paths


def test_aggregate_concatenates_runs_under_the_experiment(tmp_path):
    rows = [{"run": "a", "test_ndcg": 0.1}, {"run": "b", "test_ndcg": 0.2}]
    table = concat(per_run_files(tmp_path, rows, "m"), "fig3")
    assert table.columns.tolist() == ["experiment", "run", "test_ndcg"]
    assert table.values.tolist() == [["fig3", "a", 0.1], ["fig3", "b", 0.2]]


def test_aggregate_command_writes_three_tables_and_refuses_unequal_lists(tmp_path):
    m = per_run_files(tmp_path, [{"run": "a"}, {"run": "b"}], "m")
    e = per_run_files(tmp_path, [{"epoch": 1}, {"epoch": 2}], "e")
    n = per_run_files(tmp_path, [{"norm": 1.0}, {"norm": 2.0}], "n")
    outs = [tmp_path / f"out_{k}.parquet" for k in ("metrics", "epochs", "norms")]
    args = ["aggregate", "--experiment", "fig1"]
    args += [
        "--out-metrics",
        str(outs[0]),
        "--out-epochs",
        str(outs[1]),
        "--out-norms",
        str(outs[2]),
    ]
    assert (
        main([*args, "--metrics", *map(str, m), "--epochs", *map(str, e), "--norms", *map(str, n)])
        == 0
    )
    assert pd.read_parquet(outs[0])["run"].tolist() == ["a", "b"]
    assert pd.read_parquet(outs[1])["epoch"].tolist() == [1, 2]
    assert set(pd.read_parquet(outs[2])["experiment"]) == {"fig1"}
    for out in outs:
        out.unlink()
    with pytest.raises(SystemExit, match="one file per run"):
        main([*args, "--metrics", *map(str, m), "--epochs", str(e[0]), "--norms", *map(str, n)])
    assert not any(out.exists() for out in outs)
