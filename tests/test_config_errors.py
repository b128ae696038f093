"""Config errors, in process: one line that names the key (the workflow prints it and exits;
test_workflow.py checks that path once through the Snakemake command line)."""

import copy
from pathlib import Path

import pytest
import yaml

from prism_repro.config import ConfigError, resolve_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
RAW = yaml.safe_load((REPO / "config.yaml").read_text())


def error(raw=None, overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        resolve_config(copy.deepcopy(raw or RAW), SCHEMA, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_shipped_config_resolves_for_every_preset():
    for preset in ["paper", *RAW["presets"]]:
        assert resolve_config(copy.deepcopy(RAW), SCHEMA, {"preset": preset})["preset"] == preset


def test_misspelled_key_names_it_and_the_allowed_keys():
    raw = copy.deepcopy(RAW)
    raw["train"]["patiense"] = raw["train"].pop("patience")
    message = error(raw, {"preset": "tiny"})
    assert "'train.patiense'" in message and "allowed keys" in message and "patience" in message


def test_misspelled_key_in_a_preset_fails_even_when_another_is_selected():
    raw = copy.deepcopy(RAW)
    raw["presets"]["tiny"]["train"]["max_epoch"] = 3
    message = error(raw, {"preset": "paper"})
    assert message.startswith("preset 'tiny': ") and "'train.max_epoch'" in message


@pytest.mark.parametrize(
    "overrides, needles",
    [
        ({"preset": "nope"}, ["'preset'", "allowed values", "paper", "tiny"]),
        ({"evaluate": {"k": 0}}, ["'evaluate.k'", "out of range", "minimum"]),
        ({"train": {"patience": "ten"}}, ["'train.patience'", "type"]),
        ({"train": {"device": "tpu"}}, ["'train.device'", "allowed values", "cuda"]),
    ],
)
def test_bad_values_name_the_key(overrides, needles):
    message = error(None, overrides)
    for needle in needles:
        assert needle in message, (needle, message)


def test_unknown_dataset_in_an_experiment_names_it_and_the_defined_ones():
    raw = copy.deepcopy(RAW)
    raw["experiments"]["fig8"]["datasets"] = ["Gowala"]
    message = error(raw, {"preset": "paper"})
    assert "experiments.fig8.datasets" in message and "'Gowala'" in message
    assert "allowed values" in message and "Gowalla" in message


def test_unknown_dataset_in_theory_names_the_key():
    message = error(None, {"preset": "tiny", "theory": {"datasets": ["Gowala"]}})
    assert "'theory.datasets'" in message and "'Gowala'" in message and "Gowalla" in message
