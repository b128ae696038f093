"""The paper preset pinned: every grid value of config.yaml and the number of runs it expands to.

The values are the paper's (Appendix B): lr in {0.1, 0.01, 0.001}, weight decay in
{0, 1e-8, 1e-6, 1e-4}, DirectAU's gamma in {1, 2, 5}, seeds 123/246/492, up to 1000 epochs with
patience 10 on validation NDCG@20, batch 16384 (BPR, SSM) and 4096 (DirectAU, MAWU). Dropping or
changing a value changes a run count below, and fails.
"""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from prism_repro.config import resolve_config
from prism_repro.grid import all_candidate_runs, candidate_runs, experiment_runs
from prism_repro.selection import group_columns

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
ALL_DATASETS = ["MovieLens1M", "Gowalla", "Yelp2018", "AmazonBook"]
WD = [0.0, 1e-8, 1e-6, 1e-4]
LR = [0.1, 0.01, 0.001]
GAMMA = [1.0, 2.0, 5.0]
SEEDS = [123, 246, 492]
# MAWU's gammas: tuned on MovieLens1M only (Appendix B.1); the published values elsewhere
MAWU_TUNING = {"MovieLens1M": {"gamma_user": [0.5, 1.0, 2.0], "gamma_item": [0.5, 1.0, 2.0]}}


@pytest.fixture(scope="module")
def paper():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    return resolve_config(config, SCHEMA, {"preset": "paper"})


def run_counts(config: dict, name: str) -> tuple[int, int]:
    """(candidate runs, final runs): a tuned experiment trains its grid with the first seed, then
    one setting per group of untuned axes with every seed; an untuned one, its grid x seeds."""
    exp = config["experiments"][name]
    candidates = candidate_runs(config, name)
    if not exp["tune"]:
        return len(candidates), len(experiment_runs(config, name))
    frame = pd.DataFrame([{"dataset": d, **spec.as_dict()} for d, spec in candidates])
    groups = frame.groupby(group_columns(exp["tune"]), dropna=False).ngroups
    return len(candidates), groups * len(exp["seeds"])


def test_shared_training_and_evaluation_settings(paper):
    assert paper["preset"] == "paper"
    train = paper["train"]
    assert (train["dim"], train["max_epochs"], train["patience"]) == (64, 1000, 10)
    assert train["batch_size"] == {
        "bpr": 16384,
        "ssm": 16384,
        "directau": 4096,
        "mawu": 4096,
        # the debiasing baselines take their base loss's (BPR's, DirectAU's for auresn/MACR)
        "resn": 16384,
        "auresn": 4096,
        "ipl": 16384,
        "macr": 4096,
    }
    assert paper["evaluate"]["k"] == 20
    assert paper["split"]["fractions"] == [0.8, 0.1, 0.1]
    assert paper["variants"]["paper"]["strata_degrees"] == "train"


GRID = {"lr": LR, "weight_decay": WD, "gamma": GAMMA, "seeds": SEEDS}
# experiment -> settings that are not the full grid above, besides datasets/backbones/losses
EXPERIMENTS = {
    "table1_wd": {
        "datasets": ALL_DATASETS,
        "backbones": ["mf", "nlmf"],
        "losses": ["ssm", "directau", "mawu"],
        "decay": ["full"],
        "init": ["xavier"],
        "by_dataset": MAWU_TUNING,
        "tune": ["lr", "weight_decay", "gamma", "gamma_user", "gamma_item"],
    },
    "table1_prism": {
        "datasets": ALL_DATASETS,
        "backbones": ["mf", "nlmf"],
        "losses": ["ssm", "directau", "mawu"],
        "decay": ["none"],
        "weight_decay": [0.0],
        "init": ["prism"],
        "alpha": [1.0],
        "by_dataset": MAWU_TUNING,
        "tune": ["lr", "gamma", "gamma_user", "gamma_item"],
    },
    "fig1": {
        "datasets": ALL_DATASETS,
        "backbones": ["mf"],
        "losses": ["bpr", "directau"],
        "decay": ["full"],
        "init": ["xavier"],
        "tune": ["lr", "gamma"],
    },
    "fig3": {
        "datasets": ALL_DATASETS,
        "backbones": ["mf"],
        "losses": ["directau"],
        "decay": ["batched"],
        "init": ["xavier"],
        "tune": ["lr", "gamma"],
    },
    "fig4": {
        "datasets": ALL_DATASETS,
        "backbones": ["mf"],
        "losses": ["directau"],
        "decay": ["none"],
        "weight_decay": [0.0],
        "init": ["prism"],
        "alpha": [0.0, 0.25, 0.5, 0.75, 1.0],
        "tune": ["lr", "gamma"],
    },
    "fig6": {
        "datasets": ["Gowalla", "Yelp2018"],
        "backbones": ["mf"],
        "losses": ["directau"],
        "decay": ["full"],
        "init": ["xavier"],
        "lr": [0.001],
        "gamma": [1.0],
        "seeds": [123],
        "tune": [],
        "cosine_validation": True,
    },
    "fig8": {
        "datasets": ["Gowalla", "Yelp2018"],
        "backbones": ["lightgcn"],
        "losses": ["directau"],
        "decay": ["full"],
        "init": ["xavier"],
        "tune": ["lr", "gamma"],
    },
    "fig9": {
        "datasets": ALL_DATASETS,
        "backbones": ["mf"],
        "losses": ["bpr", "directau", "resn", "ipl", "macr"],
        "decay": ["full"],
        "init": ["xavier"],
        "resn_weight": [1e-6, 1e-5, 1e-4, 1e-3],
        "ipl_weight": [0.01, 0.1, 1.0, 10.0],
        "tune": ["lr", "weight_decay", "gamma", "resn_weight", "ipl_weight"],
    },
    "fig10": {
        "datasets": ALL_DATASETS,
        "backbones": ["mf"],
        "losses": ["ssm", "mawu"],
        "decay": ["full"],
        "init": ["xavier"],
        "tune": ["lr"],
    },
    "fig11": {
        "datasets": ALL_DATASETS,
        "backbones": ["nlmf"],
        "losses": ["ssm", "directau", "mawu"],
        "decay": ["full"],
        "init": ["xavier"],
        "tune": ["lr", "gamma"],
    },
}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_grid_values(paper, name):
    exp = paper["experiments"][name]
    want = {**GRID, "cosine_validation": False, **EXPERIMENTS[name]}
    if "directau" not in want["losses"]:
        del want["gamma"]  # DirectAU's; the others have none
    for key, value in want.items():
        assert exp[key] == value, (name, key)
    assert (exp.get("variants") or ["paper"]) == ["paper"]  # the released code's: not here
    # MAWU's gammas are published per dataset except where the experiment tunes them
    assert not {"gamma_user", "gamma_item"} & set(exp) - {"by_dataset"}


def test_no_other_experiments(paper):
    assert sorted(paper["experiments"]) == sorted(EXPERIMENTS)


# (candidate runs, final runs) per experiment, by hand. Per dataset and backbone: SSM, BPR and
# MAWU have lr x wd = 12 candidates, DirectAU 12 x 3 gammas = 36; PRISM (no decay) 3 and 9; MAWU
# on MovieLens1M x 9 (gamma_user x gamma_item) where Table 1 tunes them. Final runs: one setting
# per group of the untuned axes x 3 seeds.
RUN_COUNTS = {
    # tuned lr, wd, gamma(s): MovieLens1M 12 + 36 + 108, the others 12 + 36 + 12, per backbone
    "table1_wd": (2 * ((12 + 36 + 108) + 3 * (12 + 36 + 12)), 4 * 2 * 3 * 3),
    "table1_prism": (2 * ((3 + 9 + 27) + 3 * (3 + 9 + 3)), 4 * 2 * 3 * 3),  # tuned lr, gamma(s)
    "fig1": (4 * (12 + 36), 4 * 2 * 4 * 3),  # groups: dataset x loss x wd
    "fig3": (4 * 36, 4 * 4 * 3),  # groups: dataset x wd
    "fig4": (4 * 5 * 9, 4 * 5 * 3),  # groups: dataset x alpha
    "fig6": (2 * 4, 2 * 4),  # untuned: dataset x wd, one seed
    "fig8": (2 * 36, 2 * 4 * 3),
    # Figure 9: BPR 12, DirectAU 36, ReSN and IPL 12 x 4 weights each, MACR 12 per dataset;
    # tuned down to one setting per dataset x method
    "fig9": (4 * (12 + 36 + 48 + 48 + 12), 4 * 5 * 3),
    "fig10": (4 * (12 + 12), 4 * 2 * 4 * 3),
    "fig11": (4 * (12 + 36 + 12), 4 * 3 * 4 * 3),
}


@pytest.mark.parametrize("name", RUN_COUNTS)
def test_runs_per_experiment(paper, name):
    assert run_counts(paper, name) == RUN_COUNTS[name]


def test_distinct_candidate_runs_of_the_whole_preset(paper):
    # the grids overlap: fig10's and fig11's SSM and DirectAU runs, their MAWU runs except on
    # MovieLens1M (published gammas there, tuned ones in Table 1: 2 x 12 new), fig1's DirectAU
    # and fig6's runs are table1_wd candidates; fig3's weight-decay-0 runs (no decay) too
    # (4 datasets x 9); fig4's alpha-1 runs are table1_prism's MF DirectAU candidates (4 x 9).
    # New beyond Table 1: fig1's BPR (4 x 12), fig3 (144 - 36), fig4 (180 - 36), fig8 (72),
    # fig9's ReSN, IPL and MACR (4 x (48 + 48 + 12); its BPR and DirectAU runs are fig1's)
    table1 = 2 * ((12 + 36 + 108) + 3 * (12 + 36 + 12)) + 2 * ((3 + 9 + 27) + 3 * (3 + 9 + 3))
    # Figure 9's BPR and DirectAU candidates are fig1's; its ReSN, IPL and MACR ones are new
    new = 2 * 12 + 4 * 12 + (144 - 36) + (180 - 36) + 72 + 4 * (48 + 48 + 12)
    assert len(all_candidate_runs(paper)) == table1 + new
