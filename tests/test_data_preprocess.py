"""Parsers (LightGCN text, GroupLens ml-1m.zip) on small fixtures, and their one-line errors."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from prism_repro import cli
from prism_repro.data.interactions import read_interactions
from prism_repro.data.preprocess import ML1M_MEMBER, parse_lightgcn, preprocess
from prism_repro.errors import UserError

# user 10 appears in both files; (10, 7) is in both (a duplicate); user 3 has no items in test
TRAIN = "10 7 5 9\n3 5\n\n42 9 100\n"
TEST = "10 7 11\n3\n"

# user::movie::rating::timestamp; ratings below 3 are dropped by default
RATINGS = (
    "\n".join(
        [
            "1::1193::5::978300760",
            "1::661::3::978302109",
            "1::914::2::978301968",  # dropped at min_rating 3
            "2::1193::4::978298413",
            "2::3408::1::978298552",  # dropped; movie 3408 then has no rating >= 3
            "6040::661::3::956716541",
            "6040::661::3::956716541",  # duplicate pair
        ]
    )
    + "\n"
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def ml1m_zip(path: Path, ratings: str = RATINGS, members: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ml-1m/README", "MovieLens 1M\n")
        archive.writestr(
            "ml-1m/movies.dat", "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        )
        if ratings is not None:
            archive.writestr(ML1M_MEMBER, ratings)
        for name, text in (members or {}).items():
            archive.writestr(name, text)
    return path


def no_output(directory: Path) -> bool:
    """Nothing was written: neither the parquet nor a temporary file beside it."""
    return not directory.exists() or not any(
        p.suffix in (".parquet", ".tmp") for p in directory.iterdir()
    )


# --- LightGCN --------------------------------------------------------------------------------


def test_parse_lightgcn_lines(tmp_path):
    users, items = parse_lightgcn(write(tmp_path / "train.txt", TRAIN))
    assert users.tolist() == [10, 10, 10, 3, 42, 42]
    assert items.tolist() == [7, 5, 9, 5, 9, 100]
    assert users.dtype == np.int64 and items.dtype == np.int64


def test_lightgcn_merges_train_and_test_and_drops_duplicates(tmp_path):
    train, test = write(tmp_path / "train.txt", TRAIN), write(tmp_path / "test.txt", TEST)
    out = tmp_path / "data" / "interactions.parquet"
    meta = preprocess("lightgcn", [train, test], out)
    frame, stored = read_interactions(out)
    # raw users 3, 10, 42 -> 0, 1, 2; raw items 5, 7, 9, 11, 100 -> 0..4
    assert frame.values.tolist() == [[0, 0], [1, 0], [1, 1], [1, 2], [1, 3], [2, 2], [2, 4]]
    assert meta == stored == {"num_users": 3, "num_items": 5}
    schema = pq.read_schema(out)
    assert [(f.name, str(f.type)) for f in schema] == [("user", "int64"), ("item", "int64")]


def test_tabs_and_trailing_spaces_are_whitespace(tmp_path):
    users, items = parse_lightgcn(write(tmp_path / "t.txt", "1\t2  3 \r\n"))
    assert users.tolist() == [1, 1] and items.tolist() == [2, 3]


@pytest.mark.parametrize(
    "text, message",
    [
        ("1 2 3\n4 x 5\n", r"t\.txt:2: non-integer id 'x' in line '4 x 5'"),
        ("1 2.5\n", r"t\.txt:1: non-integer id '2\.5'"),
        ("1 2\n3 -4\n", r"t\.txt:2: negative id -4 in line '3 -4'"),
        ("-1 2\n", r"t\.txt:1: negative id -1"),
        ("1 ٣\n", r"t\.txt: not an ASCII text file"),
        ("", r"t\.txt: empty file"),
        ("\n \n", r"t\.txt: empty file"),
    ],
)
def test_bad_lightgcn_input_is_one_line_and_writes_nothing(tmp_path, text, message):
    bad = tmp_path / "t.txt"
    bad.write_bytes(text.encode("utf-8"))
    good = write(tmp_path / "train.txt", TRAIN)
    out_dir = tmp_path / "data"
    with pytest.raises(UserError, match=message) as err:
        preprocess("lightgcn", [good, bad], out_dir / "interactions.parquet")
    assert "\n" not in str(err.value)
    assert no_output(out_dir)


def test_synthetic_source_allows_its_empty_test_file(tmp_path):
    train, test = write(tmp_path / "train.txt", TRAIN), write(tmp_path / "test.txt", "")
    meta = preprocess("synthetic", [train, test], tmp_path / "interactions.parquet")
    assert meta == {"num_users": 3, "num_items": 4}
    with pytest.raises(UserError, match="no interactions"):
        preprocess("synthetic", [test], tmp_path / "other.parquet")
    assert not (tmp_path / "other.parquet").exists()


def test_unknown_source(tmp_path):
    with pytest.raises(
        UserError, match=r"unknown dataset source 'lastfm'; known sources: lightgcn"
    ):
        preprocess("lastfm", [write(tmp_path / "t.txt", TRAIN)], tmp_path / "i.parquet")


# --- MovieLens-1M ----------------------------------------------------------------------------


def test_movielens_keeps_ratings_at_least_three_by_default(tmp_path):
    out = tmp_path / "interactions.parquet"
    meta = preprocess("movielens", [ml1m_zip(tmp_path / "ml-1m.zip")], out)
    frame, stored = read_interactions(out)
    # users 1, 2, 6040 -> 0, 1, 2; movies 661, 1193 -> 0, 1 (914 and 3408 only have ratings < 3)
    assert frame.values.tolist() == [[0, 0], [0, 1], [1, 1], [2, 0]]
    assert meta == stored == {"num_users": 3, "num_items": 2, "min_rating": 3}


def test_movielens_all_ratings_as_the_released_code(tmp_path):
    out = tmp_path / "interactions.parquet"
    meta = preprocess("movielens", [ml1m_zip(tmp_path / "ml-1m.zip")], out, min_rating=1)
    assert meta == {"num_users": 3, "num_items": 4, "min_rating": 1}
    assert len(pd.read_parquet(out)) == 6  # 7 lines, one duplicate pair


@pytest.mark.parametrize(
    "ratings, message",
    [
        ("1::1193::5::978300760\n1::x::3::978302109\n", r"ratings\.dat:2: non-integer id 'x'"),
        ("1::1193::5::978300760\n1::-3::3::978302109\n", r"ratings\.dat:2: negative id -3"),
        (
            "1::1193::5\n",
            r"ratings\.dat:1: expected user::movie::rating::timestamp, got '1::1193::5'",
        ),
        ("1,1193,5,978300760\n", r"ratings\.dat:1: expected user::movie::rating::timestamp"),
        ("", r"ratings\.dat: empty file"),
        ("1::1193::1::978300760\n", r"no ratings >= 3"),
    ],
)
def test_bad_ratings(tmp_path, ratings, message):
    archive = ml1m_zip(tmp_path / "ml-1m.zip", ratings)
    with pytest.raises(UserError, match=message) as err:
        preprocess("movielens", [archive], tmp_path / "out" / "interactions.parquet")
    assert "\n" not in str(err.value)
    assert no_output(tmp_path / "out")


def test_zip_without_the_ratings_member(tmp_path):
    archive = ml1m_zip(tmp_path / "ml-1m.zip", ratings=None, members={"ratings.dat": RATINGS})
    with pytest.raises(UserError, match=r"ml-1m\.zip: no member 'ml-1m/ratings\.dat'"):
        preprocess("movielens", [archive], tmp_path / "out" / "interactions.parquet")
    assert no_output(tmp_path / "out")


@pytest.mark.parametrize(
    "member",
    ["../../etc/evil.dat", "ml-1m/../../evil.dat", "/tmp/evil.dat", "..\\evil.dat", "C:/evil.dat"],
)
def test_zip_with_a_path_traversal_member_is_refused(tmp_path, member):
    archive = ml1m_zip(tmp_path / "ml-1m.zip", members={member: "x"})
    with pytest.raises(UserError, match="path-traversal member") as err:
        preprocess("movielens", [archive], tmp_path / "out" / "interactions.parquet")
    assert repr(member) in str(err.value)
    assert no_output(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-1m.zip"]  # nothing extracted


def test_not_a_zip(tmp_path):
    with pytest.raises(UserError, match="not a zip archive"):
        preprocess("movielens", [write(tmp_path / "ml-1m.zip", RATINGS)], tmp_path / "i.parquet")


# --- command line ----------------------------------------------------------------------------


def test_cli_writes_the_parquet(tmp_path):
    archive = ml1m_zip(tmp_path / "ml-1m.zip")
    out = tmp_path / "interactions.parquet"
    assert (
        cli.main(
            [
                "preprocess",
                "--source",
                "movielens",
                "--min-rating",
                "4",
                "--in",
                str(archive),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert read_interactions(out)[1] == {"num_users": 2, "num_items": 1, "min_rating": 4}


def test_cli_error_is_one_line_exit_one(tmp_path):
    bad = write(tmp_path / "train.txt", "1 2\n3 oops\n")
    out = tmp_path / "interactions.parquet"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "prism_repro",
            "preprocess",
            "--source",
            "lightgcn",
            "--in",
            str(bad),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {bad}:2: non-integer id 'oops' in line '3 oops'"
    assert not out.exists()
