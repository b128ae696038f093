"""Command line entry: ``python -m prism_repro <command> --in ... --out ...``.

Each command lives next to the code it runs; a module that offers commands defines
``register(subparsers)`` and is listed in ``COMMANDS``. Every command reads explicit
input paths and writes explicit output paths, atomically, so Snakemake rules stay one line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from prism_repro.errors import UserError

# command -> the module that registers it; only the invoked command's module is imported, so a
# table or plot job does not pay for importing torch
COMMANDS = {
    "synthetic": "prism_repro.data.synthetic",
    "download": "prism_repro.data.download",
    "preprocess": "prism_repro.data.preprocess",
    "table2": "prism_repro.data.stats",
    "split": "prism_repro.data.split",
    "degrees": "prism_repro.data.split",
    "train": "prism_repro.train",
    "evaluate": "prism_repro.evaluate",
    "select": "prism_repro.selection",
    "aggregate": "prism_repro.aggregate",
    "figure": "prism_repro.figures",
    "table": "prism_repro.tables",
    "paper-vs-code": "prism_repro.variants",
    "cost": "prism_repro.cost",
    "record": "prism_repro.record",
    "reproduction": "prism_repro.reproduction",
    "simulate": "prism_repro.simulate",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` only, or for every command (help, unknown command)."""
    parser = argparse.ArgumentParser(prog="python -m prism_repro", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
