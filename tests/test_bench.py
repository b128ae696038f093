"""``make bench``: the CI-sized run covers every workload, the released-style reference loop
reads its edges in a random order as the released loader does."""

import math
import re

import numpy as np
import pytest
import torch


@pytest.mark.slow
def test_engine_benchmark_runs_in_ci_size(capsys):
    from prism_repro.bench import RATIOS, STAGES, WORKLOADS, main

    assert main(["--synthetic", "--epochs", "1", "--max-batches", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^device=cpu \(.+, \d+ threads\)$", out, re.M)  # the CPU is named
    names = {w.name for w in WORKLOADS}
    assert names == {
        "mf+bpr",
        "mf+ssm",
        "mf+directau",
        "mf+mawu",
        "nlmf+directau",
        "lightgcn+directau",
    }
    number = r"[0-9.]+"
    for w in WORKLOADS:
        line = rf"^workload={re.escape(w.name)} batch={w.batch} epoch_s engine={number}"
        if w.backbone == "mf":  # the released-style loop has all four losses with MF
            line += rf" reference={number} speedup={number}x"
        assert re.search(line, out, re.M), w.name
        stages = " ".join(rf"{stage}={number}" for stage in STAGES)
        assert re.search(rf"^workload={re.escape(w.name)} breakdown_s {stages}$", out, re.M)
    for backbone in ("mf", "nlmf", "lightgcn"):
        assert re.search(rf"^backbone={backbone} eval_dot_s engine={number}", out, re.M)
    assert len(RATIOS) == 4
    for name, base, target in RATIOS:
        assert re.search(
            rf"^ratio {re.escape(name)}/{re.escape(base)}={number} target<={target:g} (met|NOT met)$",
            out,
            re.M,
        )
    assert re.search(r"^speedup_vs_loader=[0-9.]+$", out, re.M)


def test_reference_loop_visits_edges_in_a_random_order():
    """The released loader's batches hold the users of a random sample of edges (its split
    permutes them), not a run of consecutive users as the user-sorted train split would."""
    from prism_repro.bench import ReferenceLoop, synthetic_data

    data = synthetic_data()
    users = data.train[:, 0]
    assert (np.diff(users) >= 0).all()  # the split is sorted by user: file order is not random
    batch = 1024
    ref = ReferenceLoop(data, "directau", batch)
    distinct = [len(u_id) for u_id, *_ in ref.loader][:-1]  # whole batches
    # a random batch of b of the E edges misses a user of degree d with prob. C(E-d, b)/C(E, b)
    e, degree = len(users), np.bincount(users)
    expected = sum(1 - np.exp(_log_choose(e - d, batch) - _log_choose(e, batch)) for d in degree)
    assert np.mean(distinct) == pytest.approx(expected, rel=0.03)
    in_file_order = [len(np.unique(users[s : s + batch])) for s in range(0, e - batch, batch)]
    assert np.mean(in_file_order) < 0.2 * expected
    # seeded: the same order every time, a different one for another seed
    again = ReferenceLoop(data, "directau", batch)
    assert torch.equal(ref.edges, again.edges)
    assert not torch.equal(ref.edges, ReferenceLoop(data, "directau", batch, seed=5).edges)


def _log_choose(n, k):
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


@pytest.mark.slow
def test_amazonbook_sized_benchmark_data_has_the_datasets_shape():
    from prism_repro.bench import amazonbook_sized_data

    data = amazonbook_sized_data()
    assert (data.num_users, data.num_items) == (52_643, 91_599)
    total = len(data.train) + len(data.val) + len(data.test)
    assert 2_500_000 < total <= 2_984_108  # duplicates of popular items are dropped
    assert len(set(map(tuple, data.train[:1000].tolist()))) == 1000
