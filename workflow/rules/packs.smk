from prism_repro import grid as _grid

# Packing on a cluster (docs/cluster.md): the group of the train rule. Runs go N to a group id
# (N: the profile's `group-components: runs: N`) and Snakemake submits each id as one job. Each id
# is a fixed set of runs, chosen when a run enters the DAG: Snakemake regroups whenever a
# checkpoint (select) updates the DAG, and an id whose members change while its job is queued
# or running breaks Snakemake's bookkeeping (snakemake#4202, #2151: steps past 100 %, KeyError:
# JobGroup), which one plain group `runs` with group-components does. Local runs have no groups.
PACK_GROUP = "runs"


def pack_size():
    return max(1, int(workflow.group_settings.group_components.get(PACK_GROUP, 1)))


@functools.cache
def initial_packs():
    """Pack number of each run known before any selection (candidates, untuned grids)."""
    runs = [(d, s.run_id) for d, s in _grid.all_candidate_runs(config)]
    return {run: i // pack_size() for i, run in enumerate(runs)}


@functools.cache
def selection_packs(path, mtime_ns):
    """Pack number of each run that a selection file adds to the initial ones."""
    table = pd.read_parquet(path, columns=["dataset", "run"])
    added = sorted(set(zip(table["dataset"], table["run"])) - set(initial_packs()))
    return {run: i // pack_size() for i, run in enumerate(added)}


def run_pack(wildcards):
    """Group id of a run's train job: runs-<k> for the initial runs, runs-<experiment>-<k> for
    the runs a selection adds (packed per experiment, with the first selection that lists them)."""
    from pathlib import Path

    run = (wildcards.dataset, wildcards.run)
    group = None
    if run in initial_packs():
        group = f"{PACK_GROUP}-{initial_packs()[run]}"
    elif hasattr(rules, "select"):
        for name, exp in config["experiments"].items():
            path = Path(expand(rules.select.output[0], preset=PRESET, experiment=name)[0])
            if exp["tune"] and path.exists():
                packs = selection_packs(path, path.stat().st_mtime_ns)
                if run in packs:
                    group = f"{PACK_GROUP}-{name}-{packs[run]}"
                    break
    group = group or f"{PACK_GROUP}-{wildcards.dataset}-{wildcards.run}"
    # group-components: runs applies to every pack id (as to wildcard groups of one name)
    workflow.parent_groupids[group] = PACK_GROUP
    return group
