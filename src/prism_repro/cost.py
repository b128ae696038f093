"""``python -m prism_repro cost``: what a preset's training grid costs before it runs.

For a preset (config.yaml + ``presets.<name>``, resolved as the workflow resolves it) it counts
the training runs per dataset x backbone x loss: the candidates trained before selection (each
run once, however many experiments share it) and at most how many runs selection adds (per
tuned experiment: its selection groups x the seeds after the first; some of these may coincide
with runs already counted). Each run costs ``epochs x (train + validation seconds per epoch)``:

* seconds per epoch per (device, dataset, backbone, loss) from a CSV (default
  ``benchmarks/epoch_seconds.csv``: ``make bench``'s CPU numbers, and for the other models on
  Gowalla the same assumed factors as the reproduction record's estimate; a GPU's rows come from
  ``benchmarks/gpu_check.sh``), or from a record: the finished runs of an earlier build
  (``--record results/<preset>``: each cell's mean train_seconds / epochs_run, validation
  included);
* epochs per run: ``--epochs expected`` (default) estimates each run's epochs until early
  stopping from its settings as the reproduction record does (``reproduction.expected_epochs``:
  what Gowalla runs showed, e.g. PRISM 38 and no decay 27, and assumptions; capped at the
  preset's ``train.max_epochs``); ``--epochs cap`` assumes every run trains to the cap (an upper
  bound); ``--epochs N`` assumes N; with ``--record``, ``expected`` means the record's mean
  epochs_run per cell.

A row of seconds is one run alone on the device (on a CPU machine: one run using all its
cores), so device-hours are the machine's hours; ``--devices N`` adds the wall time on N such
devices. It prints one row per cell and the totals. Cells without a measurement are listed as
such and left out of the total (the total says how many runs it does not cover).
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import yaml

from prism_repro import grid
from prism_repro.config import ConfigError, resolve_config
from prism_repro.debias import validation_passes
from prism_repro.errors import UserError
from prism_repro.selection import group_columns

CELL = ["dataset", "backbone", "loss"]
SECONDS_COLUMNS = ["device", "dataset", "backbone", "loss", "train_s", "validate_s"]


def run_counts(config: Mapping, epochs: str = "expected") -> pd.DataFrame:
    """Per dataset x backbone x loss: candidate runs (deduplicated over experiments), the most
    runs selection can add, and the epochs of one run on average (``epochs``: expected, cap or
    a number; runs added by selection are assumed to take their cell's average)."""
    from prism_repro.reproduction import expected_epochs

    cap = int(config["train"]["max_epochs"])
    candidates: Counter = Counter()
    epoch_sum: Counter = Counter()
    for d, spec in grid.all_candidate_runs(config):
        cell = (d, spec.backbone, spec.loss)
        candidates[cell] += 1
        if epochs == "expected":
            epoch_sum[cell] += expected_epochs(spec, cap)
        else:
            epoch_sum[cell] += cap if epochs == "cap" else min(int(epochs), cap)
    added: Counter = Counter()
    for name, exp in config["experiments"].items():
        tune, seeds = exp.get("tune") or [], exp["seeds"]
        if not tune or len(seeds) < 2:
            continue
        keys = [c for c in group_columns(tune) if c != "dataset"]
        groups = {
            (d, *(s.as_dict()[k] for k in keys)): (d, s.backbone, s.loss)
            for d, s in grid.candidate_runs(config, name)
        }
        for cell in groups.values():
            added[cell] += len(seeds) - 1
    cells = sorted(set(candidates) | set(added))
    return pd.DataFrame(
        [(*c, candidates[c], added[c], epoch_sum[c] / max(candidates[c], 1)) for c in cells],
        columns=[*CELL, "candidate_runs", "added_by_selection_at_most", "epochs"],
    )


def load_seconds(path: Path, device: str) -> pd.DataFrame:
    """Seconds per epoch of one device from a CSV; ``*`` in dataset/backbone/loss matches any."""
    if not path.exists():
        raise UserError(f"{path}: no such seconds-per-epoch table (--seconds)")
    table = pd.read_csv(path, comment="#")
    missing = [c for c in SECONDS_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    return table[table["device"] == device]


def record_seconds(folder: Path) -> pd.DataFrame:
    """Per cell: mean seconds per epoch (train_seconds / epochs_run, validation included) and
    mean epochs of the finished runs under ``folder`` (``runs/<dataset>/<run>/metrics.parquet``)."""
    files = sorted(Path(folder).glob("runs/*/*/metrics.parquet"))
    if not files:
        raise UserError(f"{folder}: no runs/<dataset>/<run>/metrics.parquet to read (--record)")
    cols = [*CELL, "train_seconds", "epochs_run"]
    runs = pd.concat([pd.read_parquet(f, columns=cols) for f in files], ignore_index=True)
    runs = runs[runs["epochs_run"] > 0]
    runs["seconds_per_epoch"] = runs["train_seconds"] / runs["epochs_run"]
    return (
        runs.groupby(CELL, as_index=False)
        .agg(seconds_per_epoch=("seconds_per_epoch", "mean"), epochs=("epochs_run", "mean"))
        .assign(source=f"record {folder} ({len(files)} runs)")
    )


def _lookup(table: pd.DataFrame, cell: tuple) -> pd.Series | None:
    """The most specific row matching ``cell`` (exact names beat ``*``)."""
    best, best_score = None, -1
    for _, row in table.iterrows():
        score = 0
        for key, value in zip(CELL, cell):
            if row[key] == value:
                score += 1
            elif row[key] != "*":
                break
        else:
            if score > best_score:
                best, best_score = row, score
    return best


def estimate(
    config: Mapping,
    seconds: pd.DataFrame | None = None,
    record: pd.DataFrame | None = None,
    epochs: str = "expected",
) -> pd.DataFrame:
    """One row per cell: runs, epochs per run, seconds per epoch, device-hours (NaN: no
    measurement for the cell)."""
    cap = config["train"]["max_epochs"]
    rows = []
    for row in run_counts(config, epochs).to_dict("records"):
        cell = tuple(row[k] for k in CELL)
        per_epoch, source = math.nan, "not measured"
        if record is not None:
            hit = _lookup(record, cell)
            if hit is not None:
                per_epoch, source = float(hit["seconds_per_epoch"]), hit["source"]
                if epochs == "expected":
                    row["epochs"] = min(float(hit["epochs"]), cap)
        elif seconds is not None:
            hit = _lookup(seconds, cell)
            if hit is not None:
                passes = validation_passes(row["loss"])
                per_epoch = float(hit["train_s"]) + passes * float(hit["validate_s"])
                source = str(hit.get("source", "")) or "seconds table"
        runs = row["candidate_runs"] + row["added_by_selection_at_most"]
        rows.append(
            {
                **row,
                "runs": runs,
                "seconds_per_epoch": per_epoch,
                "device_hours": runs * row["epochs"] * per_epoch / 3600,
                "source": source,
            }
        )
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame, devices: int | None = None) -> dict:
    known = table["device_hours"].notna()
    out = {
        "candidate_runs": int(table["candidate_runs"].sum()),
        "added_by_selection_at_most": int(table["added_by_selection_at_most"].sum()),
        "device_hours": float(table.loc[known, "device_hours"].sum()),
        "runs_not_covered": int(table.loc[~known, "runs"].sum()),
    }
    if devices:
        out["wall_hours"] = out["device_hours"] / devices
    return out


def load_config(configfile: Path, schema: Path, preset: str, overrides: Mapping) -> dict:
    try:
        raw = yaml.safe_load(Path(configfile).read_text())
        return resolve_config(raw, schema, {"preset": preset, **overrides})
    except FileNotFoundError as err:
        raise UserError(f"{err.filename}: not found (run from the repository root)") from None
    except ConfigError as err:
        raise UserError(f"config error: {err}") from None


def _command(args: argparse.Namespace) -> None:
    config = load_config(args.configfile, args.schema, args.preset, {})
    device = args.device or ("cpu" if config["train"]["device"] == "cpu" else "gpu")
    record = record_seconds(args.record) if args.record else None
    seconds = None if record is not None else load_seconds(args.seconds, device)
    if args.epochs not in ("expected", "cap") and not args.epochs.isdigit():
        raise UserError(f"--epochs {args.epochs!r}: 'expected', 'cap' or a whole number")
    table = estimate(config, seconds, record, args.epochs)
    totals = summary(table, args.devices)
    where = f"record {args.record}" if record is not None else f"{args.seconds} [{device}]"
    print(
        f"preset {config['preset']}: train.max_epochs {config['train']['max_epochs']}, "
        f"patience {config['train']['patience']}; epochs per run: "
        f"{'the record' if record is not None and args.epochs == 'expected' else args.epochs}; "
        f"seconds per epoch from {where}"
    )
    shown = table.assign(
        seconds_per_epoch=table["seconds_per_epoch"].round(2),
        epochs=table["epochs"].round(1),
        device_hours=table["device_hours"].round(2),
    )
    print(shown.to_string(index=False, na_rep="-"))
    line = (
        f"total: {totals['candidate_runs']} runs before selection, at most "
        f"{totals['added_by_selection_at_most']} added by selection; "
        f"{totals['device_hours']:.2f} device-hours"
    )
    if args.devices:
        line += f"; {totals['wall_hours']:.2f} h wall on {args.devices} device(s)"
    if totals["runs_not_covered"]:
        line += f"; {totals['runs_not_covered']} runs have no measurement and are not counted"
    print(line)
    if record is None and seconds.empty:
        print(
            f"no seconds per epoch for device {device!r} in {args.seconds}: on a GPU, "
            "benchmarks/gpu_check.sh writes such a table (pass it with --seconds), or use "
            "--device cpu, or --record results/<preset> of an earlier build"
        )


def register(sub) -> None:
    p = sub.add_parser(
        "cost", help="runs per dataset x backbone x loss and device-hours of a preset's grid"
    )
    p.add_argument("--preset", "--config-preset", default="paper", help="preset name")
    p.add_argument("--configfile", type=Path, default=Path("config.yaml"))
    p.add_argument("--schema", type=Path, default=Path("workflow/schemas/config.schema.yaml"))
    p.add_argument(
        "--seconds",
        type=Path,
        default=Path("benchmarks/epoch_seconds.csv"),
        help="seconds per epoch per device/dataset/backbone/loss (CSV)",
    )
    p.add_argument(
        "--device", default=None, help="row of --seconds to use (default: the preset's device)"
    )
    p.add_argument(
        "--record",
        type=Path,
        default=None,
        help="results/<preset> of an earlier build: its runs' seconds per epoch and epochs",
    )
    p.add_argument(
        "--epochs",
        default="expected",
        help="epochs per run: 'expected' (until early stopping, estimated), 'cap' "
        "(train.max_epochs) or a number",
    )
    p.add_argument("--devices", type=int, default=None, help="devices, for a wall time")
    p.set_defaults(func=_command)
