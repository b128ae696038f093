"""Checks of the SLURM end-to-end test (e2e.sh): what ran under SLURM, and equal results.

    check.py submissions LOG              the sbatch calls of a Snakemake log, one line each
    check.py slurm-run LOG                every non-local job ran inside a SLURM job that sacct
                                          reports COMPLETED; training jobs asked for a GPU
    check.py same-results DIR_A DIR_B     the metrics (and training curves) of two runs are equal,
                                          timing and provenance columns aside
    check.py resumed LOG                  the epoch a training log says it resumed from

Reads the log of a `snakemake --verbose` run with the SLURM executor (the plugin logs each
"sbatch call: ..." at debug level). Exits non-zero with a message on the first failed check.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

GPU_RULES = {"train"}  # the rules that profiles/default gives a GPU
# columns that record when, how long, or with what code a run was made, not what it computed
IGNORED_COLUMNS = re.compile(r"seconds|^version_|^git_commit$")


def fail(msg: str) -> None:
    sys.exit(f"FAIL: {msg}")


def sbatch_calls(log: str) -> list[dict]:
    """One dict per submission: SLURM job id, comment, GPU flag, and the jobs it runs. Calls and
    "submitted" lines can interleave (parallel submission): they are paired by the log path."""
    submitted = {
        log_path: jobid
        for jobid, log_path in re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", log)
    }
    calls = []
    for call in re.findall(r"^sbatch call: (.*)$", log, re.M):
        pattern = re.search(r"--output (\S+)", call).group(1).strip("'")
        jobids = [j for path, j in submitted.items() if path == pattern.replace("%j", j)]
        if not jobids:
            continue  # submission failed: Snakemake reports it
        targets = re.search(r"--target-jobs ((?:'[^']*' ?)+)", call)
        calls.append(
            {
                "jobid": jobids[0],
                "comment": re.search(r"--comment (\S+)", call).group(1),
                "gpus": (re.search(r"--gpus[= ](\S+)", call) or [None, None])[1],
                "flags": re.sub(
                    r"--(job-name|output|export)[= ]\S+ ", "", call.split(" --wrap=")[0]
                ),
                "targets": {
                    _job_key(*t.split(":", 1)) for t in re.findall(r"'([^']*)'", targets.group(1))
                }
                if targets
                else set(),
            }
        )
    return calls


def _job_key(rule: str, wildcards: str) -> tuple:
    pairs = [p.strip() for p in re.split(r",\s*", wildcards.strip()) if p.strip()]
    return (rule, tuple(sorted(pairs)))


def logged_jobs(log: str) -> tuple[set, set]:
    """(non-local, local) jobs of the log, each as (rule, sorted wildcards)."""
    nonlocal_jobs, local_jobs = set(), set()
    for m in re.finditer(r"^\s*(local)?(?:rule|checkpoint) (\w+):\n((?:\s+\w+: .*\n)+)", log, re.M):
        wc = re.search(r"^\s+wildcards: (.*)$", m.group(3), re.M)
        key = _job_key(m.group(2), wc.group(1) if wc else "")
        (local_jobs if m.group(1) else nonlocal_jobs).add(key)
    return nonlocal_jobs, local_jobs


def sacct(jobids: list[str]) -> dict[str, dict]:
    fields = [
        "JobIDRaw",
        "State",
        "ExitCode",
        "AllocTRES",
        "Comment",
        "Elapsed",
        "Account",
        "Partition",
    ]
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(jobids), "-o", ",".join(fields)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]
    return {r["JobIDRaw"]: r for r in rows}


def cmd_submissions(log_path: str) -> None:
    for c in sbatch_calls(Path(log_path).read_text()):
        print(f"  job {c['jobid']}: {c['flags']}")
        print(
            f"      runs: {', '.join(sorted(r + '[' + ','.join(w) + ']' for r, w in c['targets']))}"
        )


def cmd_slurm_run(log_path: str) -> None:
    log = Path(log_path).read_text()
    calls = sbatch_calls(log)
    if not calls:
        fail(
            f"{log_path}: no sbatch submissions (was it run with --verbose and the slurm executor?)"
        )
    nonlocal_jobs, local_jobs = logged_jobs(log)
    submitted = set().union(*(c["targets"] for c in calls))
    missing = nonlocal_jobs - submitted
    if missing:
        fail(f"non-local jobs that no sbatch call ran: {sorted(missing)}")
    if not nonlocal_jobs:
        fail("the log shows no non-local jobs")
    steps = re.findall(r"^(\d+) of (\d+) steps \(100%\) done", log, re.M)
    if not steps:
        fail("the run did not finish all its steps")
    if len(nonlocal_jobs) + len(local_jobs) != int(steps[-1][1]):
        fail(
            f"{len(nonlocal_jobs)} non-local + {len(local_jobs)} local jobs != {steps[-1][1]} steps"
        )
    acct = sacct([c["jobid"] for c in calls])
    print(
        f"  {'JobID':>6} {'State':<10} {'Exit':<5} {'Elapsed':<9} {'Account':<8} AllocTRES / Comment"
    )
    for c in calls:
        row = acct.get(c["jobid"])
        if row is None:
            fail(f"sacct does not know SLURM job {c['jobid']}")
        print(
            f"  {row['JobIDRaw']:>6} {row['State']:<10} {row['ExitCode']:<5} {row['Elapsed']:<9} "
            f"{row['Account']:<8} {row['AllocTRES']}  {row['Comment']}"
        )
        if row["State"] != "COMPLETED" or row["ExitCode"] != "0:0":
            fail(f"SLURM job {c['jobid']} is {row['State']} {row['ExitCode']}")
        wants_gpu = any(rule in GPU_RULES for rule, _ in c["targets"])
        has_gpu = "gres/gpu=" in row["AllocTRES"]
        if wants_gpu != has_gpu or wants_gpu != (c["gpus"] is not None):
            fail(
                f"SLURM job {c['jobid']} ({row['Comment']}): GPU expected {wants_gpu}, "
                f"sbatch --gpus={c['gpus']}, AllocTRES {row['AllocTRES']}"
            )
    gpu_jobs = sum(1 for c in calls if c["gpus"])
    if not gpu_jobs:
        fail("no SLURM job asked for a GPU")
    print(
        f"  OK: {len(nonlocal_jobs)} non-local jobs in {len(calls)} SLURM jobs ({gpu_jobs} with a GPU), "
        f"all COMPLETED; {len(local_jobs)} local jobs on the submit host"
    )


def _frame(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    return df[[c for c in df.columns if not IGNORED_COLUMNS.search(c)]]


def cmd_same_results(a: str, b: str) -> None:
    a, b = Path(a), Path(b)
    files = sorted(
        p.relative_to(a)
        for p in a.glob("results/*/**/*.parquet")
        if p.name.startswith(("metrics", "epochs", "norms")) or p.parent.name == "metrics"
    )
    if not files:
        fail(f"no metrics under {a}/results")
    for rel in files:
        if not (b / rel).exists():
            fail(f"{rel} is missing under {b}")
        left, right = _frame(a / rel), _frame(b / rel)
        try:
            pd.testing.assert_frame_equal(left, right, check_exact=True)
        except AssertionError as err:
            fail(f"{rel} differs:\n{err}")
    print(
        f"  OK: {len(files)} parquet files equal (ignoring {IGNORED_COLUMNS.pattern}), e.g. {files[0]}"
    )


def cmd_resumed(log_path: str) -> None:
    m = re.findall(r"resumed from (\S+) at epoch (\d+)", Path(log_path).read_text())
    if not m:
        fail(f"{log_path} does not say 'resumed from ... at epoch N'")
    print(m[-1][1])


if __name__ == "__main__":
    commands = {
        "submissions": cmd_submissions,
        "slurm-run": cmd_slurm_run,
        "same-results": cmd_same_results,
        "resumed": cmd_resumed,
    }
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
