"""Command line entry: ``python -m prism_repro <command> --in ... --out ...``.

Each command lives next to the code it runs; a module that offers commands defines
``register(subparsers)`` and is listed in ``COMMAND_MODULES``. Every command reads explicit
input paths and writes explicit output paths, atomically, so Snakemake rules stay one line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = [
    "prism_repro.data.synthetic",
    "prism_repro.data.download",
    "prism_repro.data.preprocess",
    "prism_repro.data.stats",
    "prism_repro.data.split",
    "prism_repro.train",
    "prism_repro.evaluate",
    "prism_repro.aggregate",
    "prism_repro.figures",
    "prism_repro.tables",
]


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 1, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m prism_repro", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
