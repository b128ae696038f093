"""The run record: one row per finished run, merged idempotently (prism_repro.record)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prism_repro.cli import main
from prism_repro.errors import UserError
from prism_repro.io import write_parquet
from prism_repro.record import (
    COLUMNS,
    merge_results,
    merge_rows,
    read_record,
    run_row,
    write_record,
)
from prism_repro.runspec import RunSpec

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config.yaml"
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def fake_run(
    root: Path, run: str, test_ndcg: float = 0.1, dataset: str = "Synthetic", cosine=True
) -> Path:
    """A finished run folder as the train command leaves it (the files the record reads)."""
    spec = RunSpec.parse(run)
    folder = root / "runs" / dataset / run
    metrics = {
        "dataset": dataset,
        "run": run,
        **spec.as_dict(),
        "best_epoch": 4,
        "epochs_run": 5,
        "stop_reason": "max_epochs",
        "diverged": False,
        "train_seconds": 10.0,
        "device": "cpu",
        "git_commit": "1234567e12",  # all digits and an 'e': must stay text
        "cpu_model": "Test CPU",
        "engine_max_epochs": 5,
        "engine_patience": 10,
        "val_ndcg": 0.2,
        "test_ndcg": test_ndcg,
    }
    for split in ("val", "test"):
        for group in ("popular", "neutral", "unpopular"):
            metrics[f"{split}_ndcg_{group}"] = 0.01
    write_parquet(pd.DataFrame([metrics]), folder / "metrics.parquet")
    norms = pd.DataFrame(
        {
            "node": ["user"] * 2 + ["item"] * 4,
            "id": [0, 1, 0, 1, 2, 3],
            "degree": [3, 1, 1, 2, 3, 4],
            "norm": [1.0, 2.0, 0.1, 0.2, 0.3, 0.4],  # items: norm rises with degree, rho 1
        }
    )
    write_parquet(norms, folder / "norms.parquet")
    epochs = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4, 5],
            "loss": [1.0] * 5,
            "val_ndcg": [0.1, 0.5, 0.9, 0.96, 1.0],
            "val_ndcg_cosine": [0.5, 0.97, 0.98, 1.0, 0.99] if cosine else [np.nan] * 5,
            "seconds": [2.0] * 5,
        }
    )
    write_parquet(epochs, folder / "epochs.parquet")
    return folder


def test_run_row_reads_metrics_norms_and_curves(tmp_path):
    folder = fake_run(tmp_path, "mf_directau-g1_full1e-06_xavier_lr0.001_s123")
    row = run_row(folder, "tiny", ["fig6", "fig1"])
    assert row["experiments"] == "fig1 fig6"
    assert row["item_norm_rho"] == pytest.approx(1.0)
    # 95 % of the best (1.0): the dot curve first reaches 0.95 at epoch 4, cosine at epoch 2
    assert row["epoch95_dot"] == 4 and row["epoch95_cosine"] == 2
    assert row["val_best_dot"] == 1.0 and row["val_best_cosine"] == 1.0
    assert row["seconds_per_epoch"] == pytest.approx(2.0)
    assert row["max_epochs"] == 5 and row["gamma"] == 1.0 and row["lr"] == 0.001


def test_run_without_cosine_validation_has_no_curve_summary(tmp_path):
    folder = fake_run(tmp_path, "mf_bpr_none_xavier_lr0.001_s123", cosine=False)
    row = run_row(folder, "tiny")
    assert np.isnan(row["epoch95_dot"]) and np.isnan(row["val_best_cosine"])


def test_write_then_read_is_the_same_record(tmp_path):
    a = fake_run(tmp_path, "mf_bpr_none_xavier_lr0.001_s123")
    b = fake_run(tmp_path, "mf_directau-g1_full1e-06_xavier_lr0.001_s123")
    rows = pd.DataFrame([run_row(a, "tiny"), run_row(b, "tiny")])
    write_record(rows, tmp_path / "r.csv")
    back = read_record(tmp_path / "r.csv")
    assert list(back.columns) == COLUMNS
    assert back["git_commit"].tolist() == ["1234567e12"] * 2
    write_record(back, tmp_path / "again.csv")
    assert (tmp_path / "r.csv").read_bytes() == (tmp_path / "again.csv").read_bytes()


def test_merge_replaces_the_same_run_appends_new_ones_and_sorts():
    def row(run, preset, ndcg):
        return {"dataset": "Gowalla", "run": run, "preset": preset, "test_ndcg": ndcg}

    old = pd.DataFrame([row("mf_b", "p", 0.1), row("mf_d", "p", 0.2)])
    new = pd.DataFrame([row("mf_d", "p", 0.3), row("mf_a", "p", 0.4), row("mf_d", "q", 0.5)])
    merged = merge_rows(old, new)
    got = list(zip(merged["run"], merged["preset"], merged["test_ndcg"]))
    assert got == [("mf_a", "p", 0.4), ("mf_b", "p", 0.1), ("mf_d", "p", 0.3), ("mf_d", "q", 0.5)]
    with pytest.raises(UserError, match="same run twice"):
        merge_rows(old, pd.concat([new, new]))


def test_merging_a_results_folder_twice_changes_nothing(tmp_path):
    results = tmp_path / "results" / "tiny"
    fake_run(results, "mf_bpr_none_xavier_lr0.01_s123")
    out = tmp_path / "record.csv"
    rows = merge_results(results, out, config_file=CONFIG, schema=SCHEMA)
    assert rows["run"].tolist() == ["mf_bpr_none_xavier_lr0.01_s123"]
    # the experiments come from the tiny preset's grid
    assert read_record(out)["experiments"].tolist() == ["fig1 fig9"]  # shared by both grids
    first = out.read_bytes()
    merge_results(results, out, config_file=CONFIG, schema=SCHEMA)
    assert out.read_bytes() == first
    # a new run is appended; an unfinished one (no norms yet) is left for later
    fake_run(results, "mf_bpr_full0.0001_xavier_lr0.01_s123", test_ndcg=0.3)
    half = fake_run(results, "mf_directau-g1_none_xavier_lr0.01_s123")
    (half / "norms.parquet").unlink()
    merge_results(results, out, config_file=CONFIG, schema=SCHEMA)
    record = read_record(out)
    assert record["run"].tolist() == [
        "mf_bpr_full0.0001_xavier_lr0.01_s123",
        "mf_bpr_none_xavier_lr0.01_s123",
    ]


def test_record_command_merges_named_runs_and_writes_their_rows(tmp_path, monkeypatch):
    results = tmp_path / "results" / "tiny"
    a = fake_run(results, "mf_bpr_none_xavier_lr0.01_s123")
    fake_run(results, "mf_bpr_full0.0001_xavier_lr0.01_s123")
    monkeypatch.chdir(REPO)
    out, rows = tmp_path / "record.csv", tmp_path / "rows.csv"
    argv = ["record", "--results", str(results), "--out", str(out), "--runs", str(a)]
    assert main([*argv, "--rows", str(rows)]) == 0
    assert read_record(out)["run"].tolist() == [a.name]
    assert read_record(rows)["run"].tolist() == [a.name]
    assert main(["record", "--results", str(tmp_path / "nothing"), "--out", str(out)]) == 1


def test_a_file_that_is_not_a_record_is_refused(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="not a run record"):
        read_record(tmp_path / "x.csv")


def test_committed_record_is_a_valid_record(tmp_path):
    path = REPO / "reference/gowalla-record/runs.csv"
    record = read_record(path)
    assert list(record.columns) == COLUMNS
    assert not record.duplicated(["preset", "dataset", "run"]).any()
    # written by the merge command: writing it again gives the same bytes
    write_record(record, tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_bytes() == path.read_bytes()


def test_workflow_merges_a_finished_run_into_the_record(workflow_copy):
    """record_run: the run's row goes into the preset's record as soon as its files exist."""
    from conftest import snakemake

    run = "mf_bpr_full0.0001_xavier_lr0.01_s123"
    fake_run(workflow_copy / "results" / "tiny", run)
    target = f"results/tiny/runs/Synthetic/{run}/record.csv"
    args = ["-c1", "--allowed-rules", "record_run", "--config", "preset=tiny", "record=rec.csv"]
    snakemake(workflow_copy, *args, "--", target)
    assert read_record(workflow_copy / "rec.csv")["run"].tolist() == [run]
    assert read_record(workflow_copy / target)["experiments"].tolist() == ["fig1 fig9"]
