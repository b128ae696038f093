"""Raw dataset files -> ``interactions.parquet`` (see ``interactions.py`` for the schema).

* ``lightgcn`` (Gowalla, Yelp2018, AmazonBook; also the synthetic set): ``train.txt`` and ``test.txt`` of
  the LightGCN release, one line per user ``user item item ...``; the two files are merged (the paper
  re-splits them 80/10/10) and duplicate pairs dropped.
* ``movielens`` (MovieLens-1M): ``ml-1m.zip`` from GroupLens, member ``ml-1m/ratings.dat``
  (``user::movie::rating::timestamp``). Ratings below ``min_rating`` are dropped: the paper's Table 2
  (6,040 users, 3,629 items, 836,478 interactions) keeps ratings >= 3; the released code (PyG's
  ``MovieLens1M``) keeps all 1,000,209 ratings, i.e. ``min_rating: 1``.

Bad input raises :class:`~prism_repro.cli.UserError` (one line) before anything is written.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from prism_repro.data.interactions import finalize_interactions, write_interactions
from prism_repro.errors import UserError

ML1M_MEMBER = "ml-1m/ratings.dat"
DEFAULT_MIN_RATING = 3
SOURCES = ("lightgcn", "synthetic", "movielens")


def _shown(line: str) -> str:
    return repr(line.strip()[:60])


def _bad_tokens(path: Path, lineno: int, line: str, fields: list[str]) -> UserError:
    for field in fields:
        if not (field.isascii() and field.isdigit()):
            if field.startswith("-") and field[1:].isascii() and field[1:].isdigit():
                return UserError(f"{path}:{lineno}: negative id {field} in line {_shown(line)}")
            return UserError(
                f"{path}:{lineno}: non-integer id {field[:20]!r} in line {_shown(line)}"
            )
    return UserError(f"{path}:{lineno}: malformed line {_shown(line)}")


def parse_lightgcn(path: Path, allow_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """LightGCN release format: one line per user, ``user item item ...`` (decimal ids >= 0).

    A line with a user and no items adds nothing; an empty file is an error unless ``allow_empty``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not an ASCII text file (byte {err.start})") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror})") from None
    user_of_line, counts, items = [], [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if not "".join(fields).isdigit():
            raise _bad_tokens(path, lineno, line, fields)
        user_of_line.append(int(fields[0]))
        counts.append(len(fields) - 1)
        items.extend(map(int, fields[1:]))
    if not user_of_line and not allow_empty:
        raise UserError(f"{path}: empty file (no 'user item ...' lines)")
    users = np.repeat(np.asarray(user_of_line, dtype=np.int64), np.asarray(counts, dtype=np.int64))
    return users, np.asarray(items, dtype=np.int64)


def preprocess_lightgcn(paths: list[Path], out: Path, allow_empty_files: bool = False) -> dict:
    """Merge the release's train and test files (the paper re-splits them) into one table."""
    parts = [parse_lightgcn(p, allow_empty=allow_empty_files) for p in paths]
    users = np.concatenate([u for u, _ in parts])
    items = np.concatenate([i for _, i in parts])
    if len(users) == 0:
        raise UserError(f"no interactions in {', '.join(map(str, paths))}")
    frame, meta = finalize_interactions(users, items)
    write_interactions(frame, meta, out)
    return meta


def _unsafe_member(name: str) -> bool:
    """A member name that would land outside the extraction directory."""
    normalized = name.replace("\\", "/")
    parts = PurePosixPath(normalized).parts
    return normalized.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in parts


def read_zip_member(path: Path, member: str) -> bytes:
    """The bytes of one member of a zip archive, refusing archives with path-traversal members."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UserError(f"{path}: not a zip archive") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror})") from None
    with archive:
        names = archive.namelist()
        unsafe = [n for n in names if _unsafe_member(n)]
        if unsafe:
            raise UserError(f"{path}: refusing archive with path-traversal member {unsafe[0]!r}")
        if member not in names:
            raise UserError(
                f"{path}: no member {member!r} (has {len(names)} members, e.g. {names[:3]})"
            )
        try:
            return archive.read(member)
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise UserError(f"{path}: cannot read member {member!r} ({err})") from None


def _check_ratings_lines(text: str, where: str) -> None:
    """Raise a one-line error naming the first malformed ``user::movie::rating::timestamp`` line."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) != 4:
            raise UserError(
                f"{where}:{lineno}: expected user::movie::rating::timestamp, got {_shown(line)}"
            )
        if not ("".join(fields).isascii() and "".join(fields).isdigit()):
            raise _bad_tokens(Path(where), lineno, line, fields)


def parse_movielens_ratings(data: bytes, where: str) -> pd.DataFrame:
    """``user::movie::rating::timestamp`` lines -> columns user, item, rating (int64)."""
    if not data.strip():
        raise UserError(f"{where}: empty file (no ratings)")
    names = ["user", "item", "rating", "timestamp"]
    try:
        frame = pd.read_csv(
            io.BytesIO(data.replace(b"::", b"\t")),
            sep="\t",
            header=None,
            names=names,
            dtype=np.int64,
            skip_blank_lines=True,
            engine="c",
        )
        ok = not (frame.to_numpy() < 0).any()
    except (ValueError, pd.errors.ParserError):
        ok = False
    if not ok:  # find and name the bad line
        _check_ratings_lines(data.decode("latin-1"), where)
        raise UserError(f"{where}: malformed ratings file")
    return frame[["user", "item", "rating"]]


def preprocess_movielens(zip_path: Path, out: Path, min_rating: int = DEFAULT_MIN_RATING) -> dict:
    """GroupLens ml-1m.zip -> interactions with rating >= ``min_rating``."""
    where = f"{zip_path}!{ML1M_MEMBER}"
    ratings = parse_movielens_ratings(read_zip_member(zip_path, ML1M_MEMBER), where)
    kept = ratings[ratings["rating"] >= min_rating]
    if kept.empty:
        raise UserError(f"{where}: no ratings >= {min_rating}")
    frame, meta = finalize_interactions(kept["user"].to_numpy(), kept["item"].to_numpy())
    meta["min_rating"] = int(min_rating)
    write_interactions(frame, meta, out)
    return meta


def preprocess(
    source: str, inputs: list[Path], out: Path, min_rating: int = DEFAULT_MIN_RATING
) -> dict:
    if source == "movielens":
        if len(inputs) != 1:
            raise UserError(f"source movielens reads one file (ml-1m.zip), got {len(inputs)}")
        return preprocess_movielens(inputs[0], out, min_rating)
    if source in ("lightgcn", "synthetic"):
        # the synthetic generator writes an empty test.txt; a real download never has an empty file
        return preprocess_lightgcn(inputs, out, allow_empty_files=source == "synthetic")
    raise UserError(f"unknown dataset source {source!r}; known sources: {', '.join(SOURCES)}")


def _command(args: argparse.Namespace) -> None:
    preprocess(args.source, args.inputs, args.out, args.min_rating)


def register(sub) -> None:
    p = sub.add_parser("preprocess", help="raw dataset files -> interactions.parquet")
    p.add_argument("--source", required=True, help=f"one of {', '.join(SOURCES)}")
    p.add_argument("--in", dest="inputs", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--min-rating",
        type=int,
        default=DEFAULT_MIN_RATING,
        help="movielens: keep ratings >= this (paper 3; the released code keeps all, i.e. 1)",
    )
    p.set_defaults(func=_command)
