"""A run's recorded commit says "-dirty" when the code it ran differs from the commit, and only
then: the record's own CSV grows in the checkout that runs it."""

import subprocess

from prism_repro.provenance import git_commit


def _repo(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "loss.py").write_text("GAMMA = 1\n")
    (tmp_path / "reference" / "gowalla-record").mkdir(parents=True)
    (tmp_path / "reference" / "gowalla-record" / "runs.csv").write_text("run\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.strip()
    return head


def test_a_clean_checkout_gives_its_commit(tmp_path):
    head = _repo(tmp_path)
    assert git_commit(tmp_path / "src" / "pkg") == head


def test_the_record_growing_does_not_make_the_checkout_dirty(tmp_path):
    head = _repo(tmp_path)
    (tmp_path / "reference" / "gowalla-record" / "runs.csv").write_text("run\na\n")
    assert git_commit(tmp_path / "src" / "pkg") == head


def test_changed_code_makes_it_dirty(tmp_path):
    head = _repo(tmp_path)
    (tmp_path / "src" / "pkg" / "loss.py").write_text("GAMMA = 2\n")
    assert git_commit(tmp_path / "src" / "pkg") == head + "-dirty"


def test_outside_a_checkout_it_is_unknown(tmp_path):
    assert git_commit(tmp_path) == "unknown"
