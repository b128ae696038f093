"""Tuning selection on fabricated candidates: the best validation NDCG per group wins."""

import logging

import pandas as pd
import pytest

from prism_repro.cli import main
from prism_repro.runspec import RunSpec
from prism_repro.selection import final_runs, group_columns, select_settings


def candidates(rows, dataset="Gowalla"):
    """Candidate metrics rows: (run id, validation NDCG[, diverged]) -> the columns selection reads."""
    out = []
    for row in rows:
        run, val, diverged = (*row, False) if len(row) == 2 else row
        spec = RunSpec.parse(run)
        out.append({"dataset": dataset, "run": run, **spec.as_dict(), "val_ndcg": val})
        out[-1]["diverged"] = diverged
    return pd.DataFrame(out)


def test_the_highest_validation_ndcg_wins():
    cands = candidates(
        [
            ("mf_ssm_full1e-06_xavier_lr0.1_s123", 0.10),
            ("mf_ssm_full1e-06_xavier_lr0.01_s123", 0.30),
            ("mf_ssm_full1e-06_xavier_lr0.001_s123", 0.20),
        ]
    )
    selected = select_settings(cands, ["lr"])
    assert len(selected) == 1
    best = selected.iloc[0]
    assert best["selected_run"] == "mf_ssm_full1e-06_xavier_lr0.01_s123"
    assert best["lr"] == 0.01 and best["val_ndcg"] == 0.30
    assert best["candidates"] == 3 and best["diverged_candidates"] == 0


def test_ties_go_to_the_first_run_in_run_order():
    cands = candidates(
        [
            ("mf_ssm_full1e-06_xavier_lr0.1_s123", 0.2),
            ("mf_ssm_full1e-06_xavier_lr0.001_s123", 0.2),
        ]
    )
    # run order: "lr0.001" < "lr0.1"
    assert select_settings(cands, ["lr"]).iloc[0]["lr"] == 0.001


def test_diverged_and_unscored_runs_never_win(caplog):
    cands = candidates(
        [
            ("mf_ssm_full1e-06_xavier_lr0.1_s123", 0.90, True),  # best score, but diverged
            ("mf_ssm_full1e-06_xavier_lr0.01_s123", float("nan")),
            ("mf_ssm_full1e-06_xavier_lr0.001_s123", 0.05),
        ]
    )
    best = select_settings(cands, ["lr"]).iloc[0]
    assert best["lr"] == 0.001 and best["diverged_candidates"] == 1
    # a group whose candidates all diverged selects nothing, with a warning
    all_bad = candidates([("mf_ssm_full1e-06_xavier_lr0.1_s123", 0.9, True)], dataset="Yelp2018")
    with caplog.at_level(logging.WARNING, logger="prism_repro.selection"):
        selected = select_settings(pd.concat([cands, all_bad]), ["lr"])
    assert selected["dataset"].tolist() == ["Gowalla"]
    assert "all 1 diverged" in caplog.text


def test_tuned_weight_decay_takes_the_decay_mode_with_it():
    # weight decay 0 is spelled decay "none" (RunSpec), the others "full": with weight decay tuned
    # they are one group, so the wd-0 candidate competes with the others
    cands = candidates(
        [
            ("mf_directau-g1_none_xavier_lr0.01_s123", 0.25),
            ("mf_directau-g1_full1e-08_xavier_lr0.01_s123", 0.20),
            ("mf_directau-g1_full0.0001_xavier_lr0.01_s123", 0.10),
            ("mf_directau-g1_none_xavier_lr0.001_s123", 0.15),
            ("mf_directau-g1_full1e-08_xavier_lr0.001_s123", 0.30),
            ("mf_directau-g1_full0.0001_xavier_lr0.001_s123", 0.05),
        ]
    )
    selected = select_settings(cands, ["lr", "weight_decay"])
    assert len(selected) == 1
    best = selected.iloc[0]
    assert best["selected_run"] == "mf_directau-g1_full1e-08_xavier_lr0.001_s123"
    assert (best["decay"], best["weight_decay"], best["candidates"]) == ("full", 1e-8, 6)
    assert "decay" not in group_columns(["lr", "weight_decay"])
    assert "decay" in group_columns(["lr"])


def test_untuned_axes_stay_in_the_group():
    # lr and gamma tuned; weight decay, backbone, loss and dataset are the groups
    cands = pd.concat(
        [
            candidates(
                [
                    ("mf_directau-g1_full1e-06_xavier_lr0.01_s123", 0.20),
                    ("mf_directau-g5_full1e-06_xavier_lr0.01_s123", 0.22),
                    ("mf_directau-g2_full1e-06_xavier_lr0.001_s123", 0.21),
                    ("mf_directau-g1_full0.0001_xavier_lr0.01_s123", 0.10),
                    ("mf_directau-g2_full0.0001_xavier_lr0.001_s123", 0.12),
                    ("nlmf_directau-g1_full1e-06_xavier_lr0.01_s123", 0.18),
                ]
            ),
            candidates([("mf_directau-g1_full1e-06_xavier_lr0.01_s123", 0.4)], dataset="Yelp2018"),
        ]
    )
    selected = select_settings(cands, ["lr", "gamma"])
    chosen = dict(zip(zip(selected["dataset"], selected["selected_run"]), selected["candidates"]))
    assert chosen == {
        ("Gowalla", "mf_directau-g5_full1e-06_xavier_lr0.01_s123"): 3,
        ("Gowalla", "mf_directau-g2_full0.0001_xavier_lr0.001_s123"): 2,
        ("Gowalla", "nlmf_directau-g1_full1e-06_xavier_lr0.01_s123"): 1,
        ("Yelp2018", "mf_directau-g1_full1e-06_xavier_lr0.01_s123"): 1,
    }


def test_an_axis_that_is_not_tunable_is_refused():
    with pytest.raises(ValueError, match="cannot tune"):
        select_settings(candidates([("mf_ssm_none_xavier_lr0.1_s123", 0.1)]), ["seed"])


def test_final_runs_are_the_selected_setting_with_every_seed():
    selected = select_settings(
        candidates(
            [
                ("nlmf_directau-g2_none_prism0.5_lr0.01_s123", 0.3),
                ("nlmf_directau-g5_none_prism0.5_lr0.01_s123", 0.2),
            ]
        ),
        ["gamma"],
    )
    runs = final_runs(selected, [123, 246, 492])
    assert runs["run"].tolist() == [
        f"nlmf_directau-g2_none_prism0.5_lr0.01_s{s}" for s in (123, 246, 492)
    ]
    assert set(runs["selected_run"]) == {"nlmf_directau-g2_none_prism0.5_lr0.01_s123"}
    assert runs["seed"].tolist() == [123, 246, 492]


def test_select_command_writes_the_final_runs(tmp_path):
    cands = candidates(
        [
            ("mf_bpr_full1e-06_xavier_lr0.1_s123", 0.1),
            ("mf_bpr_full1e-06_xavier_lr0.01_s123", 0.2),
        ]
    )
    paths = []
    for i, part in enumerate((cands.iloc[:1], cands.iloc[1:])):  # one file per run, as the rule
        paths.append(tmp_path / f"m{i}.parquet")
        part.to_parquet(paths[-1])
    out = tmp_path / "selection.parquet"
    args = ["select", "--experiment", "fig1", "--tune", "lr", "--seeds", "123", "246"]
    assert main([*args, "--in", *map(str, paths), "--out", str(out)]) == 0
    table = pd.read_parquet(out)
    assert table["experiment"].unique().tolist() == ["fig1"]
    assert table["run"].tolist() == [
        "mf_bpr_full1e-06_xavier_lr0.01_s123",
        "mf_bpr_full1e-06_xavier_lr0.01_s246",
    ]
    assert (table["val_ndcg"] == 0.2).all() and (table["candidates"] == 2).all()


def test_mawu_gammas_tuned_where_set_and_published_elsewhere():
    # MovieLens1M tunes MAWU's gammas; Gowalla has none (published values): both are one group
    ml = candidates(
        [
            ("mf_mawu-gu0.5-gi0.5_full1e-06_xavier_lr0.01_s123", 0.20),
            ("mf_mawu-gu2-gi0.5_full1e-06_xavier_lr0.01_s123", 0.25),
            ("mf_mawu-gu2-gi2_full1e-06_xavier_lr0.001_s123", 0.22),
        ],
        dataset="MovieLens1M",
    )
    gowalla = candidates(
        [
            ("mf_mawu_full1e-06_xavier_lr0.01_s123", 0.1),
            ("mf_mawu_full1e-06_xavier_lr0.001_s123", 0.3),
        ]
    )
    selected = select_settings(pd.concat([ml, gowalla]), ["lr", "gamma_user", "gamma_item"])
    assert dict(zip(selected["dataset"], selected["selected_run"])) == {
        "MovieLens1M": "mf_mawu-gu2-gi0.5_full1e-06_xavier_lr0.01_s123",
        "Gowalla": "mf_mawu_full1e-06_xavier_lr0.001_s123",
    }
    runs = final_runs(selected, [123, 246])
    assert "mf_mawu-gu2-gi0.5_full1e-06_xavier_lr0.01_s246" in set(runs["run"])
    assert "mf_mawu_full1e-06_xavier_lr0.001_s246" in set(runs["run"])
