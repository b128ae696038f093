"""Config resolution: presets, validation with one-line errors, schema defaults.

``config.yaml`` describes the paper's experiment; ``presets.<name>`` holds partial configs that are
deep-merged over it (mappings merge key by key, lists and scalars replace). Values given on the
command line (``--config key=value``) win over the preset.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    """A config problem, stated in one line that names the key."""


# A preset that sets these replaces them whole: its experiments are the preset's, not an addition.
REPLACED_BY_PRESETS = ("experiments",)


def deep_merge(base: Mapping, override: Mapping, replace: tuple[str, ...] = ()) -> dict:
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if key in replace:
            merged[key] = copy.deepcopy(value)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_schema(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _key_path(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _one_line(error: jsonschema.ValidationError, where: str) -> str:
    key = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        prefix = f"{key}." if error.absolute_path else ""
        names = ", ".join(f"'{prefix}{e}'" for e in extra)
        return f"{where}unknown config key {names}; allowed keys here: {', '.join(allowed)}"
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"{where}config key '{key}' = {error.instance!r} is not allowed; allowed values: {allowed}"
    if error.validator == "type":
        return f"{where}config key '{key}' = {error.instance!r} must be of type {error.validator_value}"
    if error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bounds = {
            k: error.schema[k]
            for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
            if k in error.schema
        }
        allowed = ", ".join(f"{k} {v}" for k, v in bounds.items())
        return f"{where}config key '{key}' = {error.instance!r} is out of range; allowed: {allowed}"
    return f"{where}config key '{key}': {error.message}"


def validate(config: Mapping, schema: Mapping, where: str = "") -> None:
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(config),
        key=lambda e: (len(e.absolute_path), _key_path(e.absolute_path)),
    )
    if errors:
        raise ConfigError(_one_line(jsonschema.exceptions.best_match(errors), where))


def fill_defaults(config: dict, schema: Mapping) -> dict:
    """Set every missing key that has a ``default`` in the schema, recursively."""
    for key, sub in schema.get("properties", {}).items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if isinstance(config.get(key), dict):
            fill_defaults(config[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        for key, value in config.items():
            if key not in schema.get("properties", {}) and isinstance(value, dict):
                fill_defaults(value, extra)
    return config


def resolve_config(
    config: Mapping, schema_path: str | Path, cli_overrides: Mapping | None = None
) -> dict:
    """The effective config of the selected preset, validated, with schema defaults filled."""
    schema = load_schema(schema_path)
    presets = config.get("presets") or {}
    name = (cli_overrides or {}).get("preset", config.get("preset", "paper"))
    validate(config, schema)
    for (
        preset,
        overrides,
    ) in presets.items():  # a typo in any preset fails now, not on its first use
        validate(
            deep_merge(config, overrides or {}, REPLACED_BY_PRESETS),
            schema,
            where=f"preset '{preset}': ",
        )
    if name != "paper" and name not in presets:
        allowed = ", ".join(["paper", *presets])
        raise ConfigError(
            f"config key 'preset' = {name!r} is not a preset; allowed values: {allowed}"
        )
    resolved = deep_merge(config, presets.get(name) or {}, REPLACED_BY_PRESETS)
    resolved = deep_merge(resolved, cli_overrides or {})
    resolved["preset"] = name
    validate(resolved, schema)
    check_references(resolved)
    return fill_defaults(resolved, schema)


def check_references(config: Mapping) -> None:
    """Names that must point at something: every experiment's datasets are defined."""
    defined = config.get("datasets", {})
    for name, exp in config.get("experiments", {}).items():
        for dataset in exp.get("datasets", []):
            if dataset not in defined:
                raise ConfigError(
                    f"config key 'experiments.{name}.datasets': unknown dataset {dataset!r}; "
                    f"allowed values: {', '.join(defined)}"
                )
    for dataset in config.get("theory", {}).get("datasets", []):
        if dataset not in defined:
            raise ConfigError(
                f"config key 'theory.datasets': unknown dataset {dataset!r}; "
                f"allowed values: {', '.join(defined)}"
            )
