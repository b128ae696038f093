"""Config resolution: presets, validation with one-line errors, schema defaults.

``config.yaml`` describes the paper's experiment; ``presets.<name>`` holds partial configs that are
deep-merged over it (mappings merge key by key, lists and scalars replace). A preset's
``all_experiments`` mapping is merged into every experiment first, then its ``experiments``
override single experiments (or single keys of one); an experiment set to ``null`` is dropped.
Values given on the command line (``--config key=value``) win over the preset; nested values
(``'train={max_epochs: 30}'``, which Snakemake hands over as strings) are read as YAML scalars.

The schema's allowed names (backbones, losses, decay modes, inits, tunable axes, each loss's grid
parameters, variant keys, batch sizes) come from the registries (``prism_repro.registry``,
``prism_repro.variants``) when the schema is loaded, so adding a loss never edits the schema.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import jsonschema
import yaml

from prism_repro import registry
from prism_repro.errors import ConfigError

__all__ = ["ConfigError", "deep_merge", "load_schema", "resolve_config", "apply_preset"]


def deep_merge(base: Mapping, override: Mapping) -> dict:
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_preset(config: Mapping, preset: Mapping | None) -> dict:
    """``config`` with a preset merged over it (see the module docstring)."""
    preset = dict(preset or {})
    shared = preset.pop("all_experiments", None) or {}
    overrides = preset.pop("experiments", None) or {}
    merged = deep_merge(config, preset)
    experiments = {}
    for name, exp in (merged.get("experiments") or {}).items():
        experiments[name] = deep_merge(exp, shared) if isinstance(exp, Mapping) else exp
    for name, exp in overrides.items():
        if exp is None:
            experiments.pop(name, None)
        elif isinstance(experiments.get(name), Mapping):
            experiments[name] = deep_merge(experiments[name], exp)
        else:
            experiments[name] = deep_merge(shared, exp)
    merged["experiments"] = experiments
    return merged


def _from_registries(schema: dict) -> dict:
    """Fill the schema's lists of names from the registries (one name, one place)."""
    from prism_repro.grid import tunable_axes
    from prism_repro.variants import VARIANT_KEYS

    exp = schema["properties"]["experiments"]["additionalProperties"]["properties"]
    for key, names in (
        ("backbones", registry.BACKBONES),
        ("losses", registry.LOSSES),
        ("decay", registry.DECAY_MODES),
        ("init", registry.INITS),
        ("tune", tunable_axes()),
    ):
        exp[key]["items"] = {"enum": list(names)}
    for name, param in registry.loss_params().items():
        users = [e.label for e in registry.LOSSES.values() if param in e.params]
        entry = {"$ref": "#/$defs/number_list", "description": f"{param.doc} ({', '.join(users)})"}
        if param.default is not None:
            entry["default"] = [param.default]
        exp[name] = {**entry, **{k: v for k, v in exp.get(name, {}).items() if k == "description"}}
    batch = schema["properties"]["train"]["properties"]["batch_size"]
    batch["properties"] = {
        name: {"type": "integer", "minimum": 1, "default": e.batch_size}
        for name, e in registry.LOSSES.items()
    }
    batch["default"] = {name: e.batch_size for name, e in registry.LOSSES.items()}
    variant = schema["$defs"]["variant"]
    variant["properties"] = {
        k.name: {
            "enum": list(k.choices),
            "description": f"{k.topic}: "
            + "; ".join(f"{value} = {text}" for value, text in k.meaning.items()),
        }
        for k in VARIANT_KEYS.values()
    }
    return schema


def load_schema(path: str | Path) -> dict:
    return _from_registries(yaml.safe_load(Path(path).read_text()))


def _scalar(text):
    """A nested command-line value as YAML reads it ('30' -> 30, '1e-4' -> 0.0001, 'true')."""
    if not isinstance(text, str):
        return text
    try:
        return float(text) if _looks_float(text) else yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _looks_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return not text.strip().lstrip("+-").isdigit()


def coerce_cli(value, depth: int = 0):
    """Snakemake parses ``--config key=value`` itself, but hands values nested in a mapping or a
    list over as strings; read those as YAML scalars (numbers, booleans, null)."""
    if isinstance(value, Mapping):
        return {k: coerce_cli(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_cli(v, depth + 1) for v in value]
    return _scalar(value) if depth > 0 else value


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
    for preset, overrides in presets.items():  # a typo in any preset fails now, not on its use
        where = f"preset '{preset}': "
        merged = apply_preset(config, overrides)
        validate(merged, schema, where=where)
        try:
            check_references(merged)
        except ConfigError as err:
            raise ConfigError(f"{where}{err}") from None
    if name != "paper" and name not in presets:
        allowed = ", ".join(["paper", *presets])
        raise ConfigError(
            f"config key 'preset' = {name!r} is not a preset; allowed values: {allowed}"
        )
    resolved = apply_preset(config, presets.get(name))
    resolved = deep_merge(resolved, coerce_cli(dict(cli_overrides or {})))
    resolved["preset"] = name
    validate(resolved, schema)
    check_references(resolved)
    return fill_defaults(resolved, schema)


def check_references(config: Mapping) -> None:
    """Names that must point at something: every experiment's datasets and variants are
    defined, and the default variant exists and sets every variant key."""
    from prism_repro.runspec import DEFAULT_VARIANT
    from prism_repro.variants import VARIANT_KEYS

    defined = config.get("datasets", {})
    variants = config.get("variants") or {}
    missing = [k for k in VARIANT_KEYS if k not in (variants.get(DEFAULT_VARIANT) or {})]
    if missing:
        raise ConfigError(
            f"config key 'variants.{DEFAULT_VARIANT}' must set every variant key; missing: "
            + ", ".join(missing)
        )
    for name, exp in config.get("experiments", {}).items():
        for dataset in exp.get("datasets", []):
            if dataset not in defined:
                raise ConfigError(
                    f"config key 'experiments.{name}.datasets': unknown dataset {dataset!r}; "
                    f"allowed values: {', '.join(defined)}"
                )
        for variant in exp.get("variants", []):
            if variant not in variants:
                raise ConfigError(
                    f"config key 'experiments.{name}.variants': unknown variant {variant!r}; "
                    f"allowed values: {', '.join(variants)}"
                )
    for dataset in config.get("theory", {}).get("datasets", []):
        if dataset not in defined:
            raise ConfigError(
                f"config key 'theory.datasets': unknown dataset {dataset!r}; "
                f"allowed values: {', '.join(defined)}"
            )
