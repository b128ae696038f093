"""The cost command: runs per dataset x backbone x loss and device-hours of a preset's grid."""

import copy

import pandas as pd
import pytest

from conftest import REPO
from prism_repro import cost
from prism_repro.debias import validation_passes

SECONDS = REPO / "benchmarks" / "epoch_seconds.csv"


def resolved(preset: str) -> dict:
    return cost.load_config(
        REPO / "config.yaml", REPO / "workflow/schemas/config.schema.yaml", preset, {}
    )


@pytest.fixture(scope="module")
def tiny() -> dict:
    return resolved("tiny")


def one_experiment(config: dict, **settings) -> dict:
    """``config`` with a single hand-made experiment."""
    config = copy.deepcopy(config)
    exp = {
        "datasets": ["Synthetic"],
        "backbones": ["mf"],
        "losses": ["bpr"],
        "decay": ["full"],
        "weight_decay": [1e-6, 1e-4],
        "init": ["xavier"],
        "lr": [0.1, 0.01],
        "seeds": [1, 2, 3],
        "tune": ["lr"],
    }
    exp.update(settings)
    config["experiments"] = {"only": exp}
    return config


def test_counts_candidates_and_the_runs_selection_adds(tiny):
    # 2 weight decays x 2 lrs with the first seed; selection picks an lr per weight decay
    # (2 groups) and trains it with the 2 other seeds: 4 more
    counts = cost.run_counts(one_experiment(tiny))
    assert counts.to_dict("records") == [
        {
            "dataset": "Synthetic",
            "backbone": "mf",
            "loss": "bpr",
            "candidate_runs": 4,
            "added_by_selection_at_most": 4,
            "epochs": 15.0,  # expected 60 at lr >= 1e-2, capped at tiny's 15
        }
    ]
    # tuning weight decay too: one group, 2 more runs; no tuning: all 12 runs up front
    both = cost.run_counts(one_experiment(tiny, tune=["lr", "weight_decay"]))
    assert both[["candidate_runs", "added_by_selection_at_most"]].values.tolist() == [[4, 2]]
    none = cost.run_counts(one_experiment(tiny, tune=[]))
    assert none[["candidate_runs", "added_by_selection_at_most"]].values.tolist() == [[12, 0]]


def test_runs_shared_by_experiments_count_once():
    # gowalla-cpu: DirectAU 1e-6 is in table1_wd, fig1 and fig6; fig6's runs are fig1's
    counts = cost.run_counts(resolved("gowalla-cpu")).set_index("loss")
    assert counts.loc["directau", "candidate_runs"] == 5  # WD 0/1e-8/1e-6/1e-4 + PRISM
    assert counts.loc["bpr", "candidate_runs"] == 4
    assert counts["added_by_selection_at_most"].sum() == 0


def test_device_hours_from_the_seconds_table(tiny, tmp_path):
    table = tmp_path / "s.csv"
    table.write_text(
        "device,dataset,backbone,loss,train_s,validate_s\n"
        "cpu,*,*,*,100,100\n"
        "cpu,Synthetic,mf,bpr,3,1.5\n"
        "gpu,Synthetic,mf,bpr,0.1,0.1\n"
    )
    config = one_experiment(tiny)
    out = cost.estimate(config, cost.load_seconds(table, "cpu"), epochs="10")
    row = out.iloc[0]
    # 8 runs x 10 epochs x 4.5 s; the exact row beats the wildcard
    assert row["seconds_per_epoch"] == 4.5 and row["epochs"] == 10
    assert row["device_hours"] == pytest.approx(8 * 10 * 4.5 / 3600)
    # the cap: the preset's max_epochs (tiny: 15)
    capped = cost.estimate(config, cost.load_seconds(table, "cpu"), epochs="cap")
    assert capped.iloc[0]["epochs"] == 15 and capped.iloc[0]["device_hours"] == pytest.approx(
        8 * 15 * 4.5 / 3600
    )
    other = cost.estimate(one_experiment(tiny, backbones=["nlmf"]), cost.load_seconds(table, "cpu"))
    assert other.iloc[0]["seconds_per_epoch"] == 200  # only the wildcard matches
    missing = cost.estimate(config, cost.load_seconds(table, "tpu"), epochs="cap")
    totals = cost.summary(missing)
    assert totals["device_hours"] == 0 and totals["runs_not_covered"] == 8


def test_record_gives_seconds_per_epoch_and_epochs(tiny, tmp_path):
    for i, (seconds, epochs) in enumerate([(40.0, 20), (90.0, 30)]):
        folder = tmp_path / "runs" / "Synthetic" / f"run{i}"
        folder.mkdir(parents=True)
        pd.DataFrame(
            [
                {
                    "dataset": "Synthetic",
                    "backbone": "mf",
                    "loss": "bpr",
                    "train_seconds": seconds,
                    "epochs_run": epochs,
                }
            ]
        ).to_parquet(folder / "metrics.parquet")
    record = cost.record_seconds(tmp_path)
    row = cost.estimate(one_experiment(tiny), record=record).iloc[0]
    # mean of 2 and 3 s per epoch; mean of 20 and 30 epochs, within tiny's cap of 15
    assert row["seconds_per_epoch"] == 2.5 and row["epochs"] == 15
    row = cost.estimate(one_experiment(tiny, tune=[]), record=record, epochs="12").iloc[0]
    assert row["device_hours"] == pytest.approx(12 * 12 * 2.5 / 3600)


def test_gowalla_cpu_estimate_is_within_a_factor_2_of_the_measured_build():
    """Acceptance 3. Measured (README, "Gowalla on CPU", 2026-11-27): the gowalla-cpu preset's
    nine runs took 52.7 min wall on the 2-core machine, two one-thread jobs at a time, i.e. the
    whole machine. No per-run record of that build is kept (reference/gowalla-record/ holds the
    larger record preset, not yet run), so the comparison is with that wall time. The estimate's
    seconds per epoch are `make bench`'s on the same machine using both cores (README: MF +
    DirectAU 4.47 s, MF + BPR 0.41 s, 2.6 s validation), so its device-hours are the machine's
    hours; its epochs are each run's expected epochs (PRISM 40, no or 1e-8 decay 30, weight decay
    1e-6 at lr 1e-3 the 150 cap, 1e-4 100), the same model as docs/reproduction.md's estimate."""
    table = cost.estimate(resolved("gowalla-cpu"), cost.load_seconds(SECONDS, "cpu"))
    totals = cost.summary(table, devices=1)
    assert totals["candidate_runs"] == 9 and totals["runs_not_covered"] == 0
    measured_hours = 52.7 / 60
    ratio = totals["wall_hours"] / measured_hours
    print(f"gowalla-cpu: estimated {totals['wall_hours']:.2f} h, measured 0.88 h: {ratio:.2f}x")
    assert 0.5 <= ratio <= 2.0
    # every run at the cap instead: an upper bound, and more than twice the measured time
    capped = cost.summary(
        cost.estimate(resolved("gowalla-cpu"), cost.load_seconds(SECONDS, "cpu"), epochs="cap")
    )
    assert (
        capped["device_hours"] > totals["device_hours"]
        and capped["device_hours"] > 2 * measured_hours
    )


def test_same_estimate_as_the_reproduction_records_cost_table():
    """One cost model: the cost command on the gowalla-record preset gives the hours of
    reproduction.cost_table (docs/reproduction.md), and the CSV's Gowalla CPU rows are its
    seconds per epoch."""
    from prism_repro.reproduction import cost_table, seconds_per_epoch
    from prism_repro.runspec import RunSpec

    config = resolved("gowalla-record")
    ours = cost.estimate(config, cost.load_seconds(SECONDS, "cpu"))
    theirs = cost_table(config, "Gowalla")
    # (cost_table rounds seconds per epoch to 0.01 s)
    assert ours["device_hours"].sum() == pytest.approx(theirs["hours"].sum(), rel=1e-3)
    table = cost.load_seconds(SECONDS, "cpu")
    for row in table[table["dataset"] == "Gowalla"].to_dict("records"):
        spec = RunSpec.make(row["backbone"], row["loss"], "full", 0.0, "xavier", 0.0, 0.01, 1)
        passes = validation_passes(row["loss"])  # MACR validates every c
        assert row["train_s"] + passes * row["validate_s"] == pytest.approx(
            seconds_per_epoch(spec), abs=1e-3
        )


def test_macr_epochs_pay_for_validating_every_c():
    from prism_repro.debias import MACR_C_GRID, MACR_VALIDATION_PASSES

    # every c costs something, and sharing one product costs less than a pass per c
    assert 1 < MACR_VALIDATION_PASSES < len(MACR_C_GRID) == 13
    assert validation_passes("macr") == MACR_VALIDATION_PASSES
    assert validation_passes("bpr") == validation_passes("directau") == 1
    config = resolved("gowalla-record")
    table = cost.estimate(config, cost.load_seconds(SECONDS, "cpu")).set_index("loss")
    assert table.loc["macr", "seconds_per_epoch"] == pytest.approx(0.41 + 8 * 2.6)


def test_command_prints_the_table_and_says_what_it_cannot_cover(capsys, monkeypatch):
    from prism_repro.cli import main

    monkeypatch.chdir(REPO)
    assert main(["cost", "--config-preset", "gowalla-cpu", "--devices", "1"]) == 0
    out = capsys.readouterr().out
    assert "Gowalla" in out and "total: 9 runs before selection" in out and "h wall" in out
    assert main(["cost", "--preset", "paper"]) == 0  # no GPU seconds measured yet
    out = capsys.readouterr().out
    assert "no seconds per epoch for device 'gpu'" in out and "not counted" in out
    assert main(["cost", "--preset", "gowalla-cpu", "--epochs", "many"]) == 1
    assert main(["cost", "--preset", "nope"]) == 1
    assert "preset" in capsys.readouterr().err
