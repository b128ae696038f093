"""The reproduction record: a committed CSV with one row per finished training run.

Results folders are lost when a machine is recycled; the record keeps what a run measured (its
settings, validation and test NDCG@20 overall and by popularity, early stopping, train time,
device, CPU model, commit, date) so it can grow over several sittings and on several machines.
``python -m prism_repro record --results results/<preset> --out <csv>`` merges every finished
run of the results folder into the CSV: a run already there (same preset, dataset and run id) is
replaced, a new one appended; rows are sorted and the file is written atomically under a lock, so
merging twice changes nothing and two merges at once lose nothing. The workflow merges each run
as it finishes when the preset sets ``record:`` (workflow/rules/record.smk).

Besides the run's metrics, two summaries that figures need and that would otherwise live only in
the results folder: Spearman's rho of item embedding norm against train degree (Figures 2 and 3,
from ``norms.parquet``) and, for runs validated by cosine too, the epoch at which dot-product and
cosine validation NDCG first reach 95 % of their best (Figure 6, from ``epochs.parquet``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from prism_repro import registry
from prism_repro.errors import UserError
from prism_repro.io import atomic_path
from prism_repro.picks import spearman_rho

__all__ = [
    "COLUMNS",
    "KEY",
    "read_record",
    "write_record",
    "merge_rows",
    "run_row",
    "collect",
    "experiments_by_run",
]

log = logging.getLogger("prism_repro.record")

KEY = ["preset", "dataset", "run"]
SETTINGS = [
    "variant",
    "backbone",
    "loss",
    "decay",
    "weight_decay",
    "init",
    "alpha",
    *registry.loss_params(),
    "lr",
    "seed",
]
# NDCG@k overall and by popularity group, as evaluate.py names them
METRICS = [
    f"{split}_ndcg{suffix}"
    for split in ("val", "test")
    for suffix in ("", *(f"_{g}" for g in registry.POPULARITY_GROUPS))
]
FIG6 = ["val_best_dot", "val_best_cosine", "epoch95_dot", "epoch95_cosine"]
COLUMNS = [
    "dataset",
    "run",
    "preset",
    "experiments",
    *SETTINGS,
    *METRICS,
    "item_norm_rho",
    *FIG6,
    "best_epoch",
    "epochs_run",
    "stop_reason",
    "diverged",
    "max_epochs",
    "patience",
    "train_seconds",
    "seconds_per_epoch",
    "device",
    "cpu_model",
    "git_commit",
    "finished",
]
INTEGERS = ["seed", "best_epoch", "epochs_run", "max_epochs", "patience", "epoch95_dot"]
INTEGERS += ["epoch95_cosine"]
TEXT = [
    "dataset",
    "run",
    "preset",
    "experiments",
    "variant",
    "backbone",
    "loss",
    "decay",
    "init",
    "stop_reason",
    "device",
    "cpu_model",
    "git_commit",
    "finished",
]
BOOLEANS = ["diverged"]
FLOATS = [c for c in COLUMNS if c not in INTEGERS + TEXT + BOOLEANS]
RUN_FILES = ("metrics.parquet", "norms.parquet", "epochs.parquet")


# -- the CSV --------------------------------------------------------------------------------


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """The record's columns in order, each with its one type, rows sorted by key: a frame read
    back from the CSV and the frame it was written from are equal."""
    frame = frame.reindex(columns=COLUMNS).copy()
    for col in TEXT:
        frame[col] = frame[col].map(lambda v: "" if _missing(v) else str(v)).astype(object)
    for col in FLOATS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    for col in INTEGERS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").round().astype("Int64")
    for col in BOOLEANS:
        frame[col] = frame[col].map(_as_bool).astype(bool)
    return frame.sort_values(["dataset", "run", "preset"], kind="stable").reset_index(drop=True)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _as_bool(value) -> bool:
    if isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", ""):
            raise UserError(f"record: diverged must be True or False, got {value!r}")
        return value.lower() in ("true", "1")
    return bool(value) if not _missing(value) else False


def read_record(path: str | Path) -> pd.DataFrame:
    """The record at ``path`` (an empty record when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return normalise(pd.DataFrame(columns=COLUMNS))
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    # a loss registered after the record was written adds grid-parameter columns: unset there
    params = set(registry.loss_params())
    missing = [c for c in COLUMNS if c not in frame.columns and c not in params]
    if missing:
        raise UserError(f"{path}: not a run record, columns missing: {', '.join(missing)}")
    frame = frame.replace("", np.nan)
    for col in TEXT:
        frame[col] = frame[col].fillna("")
    return normalise(frame)


def write_record(frame: pd.DataFrame, path: str | Path) -> None:
    """Write the record atomically (floats in their shortest exact form)."""
    frame = normalise(frame)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")


def merge_rows(record: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``record`` with ``rows`` merged in: a row with the same key replaces the old one."""
    rows = normalise(rows)
    if rows.duplicated(KEY).any():
        dup = rows[rows.duplicated(KEY, keep=False)][KEY].drop_duplicates()
        raise UserError(f"record: the same run twice among the new rows: {dup.to_dict('records')}")
    record = normalise(record)
    keep = ~record.set_index(KEY).index.isin(rows.set_index(KEY).index)
    parts = [p for p in (record[keep], rows) if not p.empty]
    return normalise(pd.concat(parts, ignore_index=True) if parts else record)


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock beside ``path`` for a read-merge-write (merges from parallel jobs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / f".{path.name}.lock"
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- one run's row --------------------------------------------------------------------------


def _epoch_reaching(values: pd.Series, epochs: pd.Series, share: float = 0.95) -> float:
    """First epoch at which ``values`` reach ``share`` of their best (NaN without values)."""
    values = pd.to_numeric(values, errors="coerce")
    if values.notna().sum() == 0:
        return float("nan")
    reached = values >= share * values.max()
    return float(epochs[reached].iloc[0])


def run_row(run_dir: Path, preset: str, experiments: Iterable[str] = ()) -> dict:
    """The record row of one finished run folder (metrics, norms and epochs parquet)."""
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    if len(metrics) != 1:
        raise UserError(f"{run_dir / 'metrics.parquet'}: expected one row, found {len(metrics)}")
    m = metrics.iloc[0].to_dict()
    norms = pd.read_parquet(run_dir / "norms.parquet", columns=["node", "degree", "norm"])
    items = norms[norms["node"] == "item"]
    epochs = pd.read_parquet(run_dir / "epochs.parquet").sort_values("epoch")
    cosine = pd.to_numeric(epochs.get("val_ndcg_cosine"), errors="coerce")
    has_cosine = cosine is not None and cosine.notna().any()
    finished = datetime.fromtimestamp((run_dir / "metrics.parquet").stat().st_mtime, timezone.utc)
    epochs_run = m.get("epochs_run")
    train_seconds = m.get("train_seconds")
    row = {
        "dataset": m.get("dataset", run_dir.parent.name),
        "run": m.get("run", run_dir.name),
        "preset": preset,
        "experiments": " ".join(sorted(experiments)),
        **{c: m.get(c) for c in SETTINGS},
        **{c: m.get(c) for c in METRICS},
        "item_norm_rho": spearman_rho(items["degree"], items["norm"]),
        "val_best_dot": pd.to_numeric(epochs["val_ndcg"], errors="coerce").max()
        if has_cosine
        else float("nan"),
        "val_best_cosine": cosine.max() if has_cosine else float("nan"),
        "epoch95_dot": _epoch_reaching(epochs["val_ndcg"], epochs["epoch"])
        if has_cosine
        else float("nan"),
        "epoch95_cosine": _epoch_reaching(cosine, epochs["epoch"]) if has_cosine else float("nan"),
        "best_epoch": m.get("best_epoch"),
        "epochs_run": epochs_run,
        "stop_reason": m.get("stop_reason"),
        "diverged": m.get("diverged"),
        "max_epochs": m.get("engine_max_epochs"),
        "patience": m.get("engine_patience"),
        "train_seconds": train_seconds,
        "seconds_per_epoch": train_seconds / epochs_run if epochs_run else float("nan"),
        "device": m.get("device"),
        "cpu_model": m.get("cpu_model"),
        "git_commit": m.get("git_commit"),
        "finished": finished.strftime("%Y-%m-%d %H:%M UTC"),
    }
    return row


def finished_run_dirs(results: Path) -> list[Path]:
    """Run folders under ``results/runs/<dataset>/`` whose three result files all exist (a run
    still being written, or one whose job failed, is left for a later merge)."""
    dirs = sorted(p.parent for p in (results / "runs").glob("*/*/metrics.parquet"))
    done = [d for d in dirs if all((d / name).exists() for name in RUN_FILES)]
    for d in sorted(set(dirs) - set(done)):
        log.info("record: %s is not finished (missing %s), left out", d, RUN_FILES)
    return done


def experiments_by_run(config: Mapping) -> dict[tuple[str, str], list[str]]:
    """(dataset, run id) -> the experiments of the resolved ``config`` whose grid holds it."""
    from prism_repro.grid import experiment_runs

    out: dict[tuple[str, str], list[str]] = {}
    for name in config["experiments"]:
        for dataset, spec in experiment_runs(config, name):
            out.setdefault((dataset, spec.run_id), []).append(name)
    return out


def preset_config(preset: str, config_file: Path, schema: Path) -> dict | None:
    """The resolved config of ``preset`` (None, with a warning, when it cannot be resolved)."""
    import yaml

    from prism_repro.config import resolve_config
    from prism_repro.errors import ConfigError

    if not config_file.exists():
        log.warning("record: %s not found; experiments column left empty", config_file)
        return None
    try:
        return resolve_config(yaml.safe_load(config_file.read_text()), schema, {"preset": preset})
    except ConfigError as err:
        log.warning(
            "record: preset %r not resolved (%s); experiments column left empty", preset, err
        )
        return None


def collect(run_dirs: Iterable[Path], preset: str, membership: Mapping) -> pd.DataFrame:
    rows = []
    for d in run_dirs:
        key = (d.parent.name, d.name)
        rows.append(run_row(d, preset, membership.get(key, ())))
    return normalise(pd.DataFrame(rows, columns=COLUMNS))


def refresh_experiments(record: pd.DataFrame, preset: str, membership: Mapping) -> pd.DataFrame:
    """Set the experiments column of the preset's rows from its current grid."""
    record = record.copy()
    mine = record["preset"] == preset
    record.loc[mine, "experiments"] = [
        " ".join(sorted(membership.get((d, r), ())))
        for d, r in zip(record.loc[mine, "dataset"], record.loc[mine, "run"])
    ]
    return record


def merge_results(
    results: Path,
    out: Path,
    preset: str | None = None,
    runs: list[Path] | None = None,
    config_file: Path = Path("config.yaml"),
    schema: Path = Path("workflow/schemas/config.schema.yaml"),
) -> pd.DataFrame:
    """Merge the finished runs of ``results`` (or only ``runs``) into the record at ``out``;
    returns the new rows."""
    results = Path(results)
    preset = preset or results.name
    if runs:
        missing = [d for d in runs if not all((d / n).exists() for n in RUN_FILES)]
        if missing:
            raise UserError(f"record: run folder(s) without {', '.join(RUN_FILES)}: {missing}")
        run_dirs = [Path(d) for d in runs]
    else:
        if not (results / "runs").is_dir():
            raise UserError(f"record: no runs/ folder under {results}")
        run_dirs = finished_run_dirs(results)
    config = preset_config(preset, Path(config_file), Path(schema))
    membership = experiments_by_run(config) if config else {}
    rows = collect(run_dirs, preset, membership)
    with locked(Path(out)):
        record = merge_rows(read_record(out), rows)
        if config:
            record = refresh_experiments(record, preset, membership)
        write_record(record, out)
    log.info(
        "record: merged %d run(s) of %s into %s (%d rows)", len(rows), results, out, len(record)
    )
    return rows


def _command(args: argparse.Namespace) -> None:
    rows = merge_results(
        args.results, args.out, args.preset, args.runs, args.config_file, args.schema
    )
    if args.rows:
        write_record(rows, args.rows)


def register(sub) -> None:
    p = sub.add_parser(
        "record", help="merge finished runs' metrics into the committed reproduction record (CSV)"
    )
    p.add_argument("--results", type=Path, required=True, help="a preset's folder: results/<name>")
    p.add_argument("--out", type=Path, required=True, help="the record CSV (created if missing)")
    p.add_argument("--preset", default=None, help="preset name (default: the results folder's)")
    p.add_argument(
        "--runs",
        type=Path,
        nargs="+",
        default=None,
        help="merge only these run folders (default: every finished run under --results)",
    )
    p.add_argument("--rows", type=Path, default=None, help="also write the merged rows to this CSV")
    p.add_argument("--config-file", type=Path, default=Path("config.yaml"))
    p.add_argument("--schema", type=Path, default=Path("workflow/schemas/config.schema.yaml"))
    p.set_defaults(func=_command)
