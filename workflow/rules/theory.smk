# Theory: Monte-Carlo check of Observation 1, Theorem 3.1 and Corollaries 1-2 (prism_repro.simulate),
# one simulation per graph (config `theory`): the synthetic power-law graph `powerlaw` and the train
# split of each dataset in theory.datasets. Figure 7 reads `powerlaw`; the claims table reads all.
THEORY_GRAPH = "powerlaw"


def theory_graphs():
    return [THEORY_GRAPH, *config["theory"]["datasets"]]


def theory_table(preset, graph):
    return f"results/{preset}/theory/{graph}.parquet"


def theory_split(wildcards):
    """The split a dataset graph's simulation reads (none for the power-law graph)."""
    if wildcards.graph == THEORY_GRAPH:
        return []
    seed = config["theory"]["split_seed"]
    return [f"results/{wildcards.preset}/data/{wildcards.graph}/split_s{seed}.parquet"]


def simulate_args(wildcards):
    """Flags of `prism_repro simulate` from config.theory; the graph's source first."""
    t = config["theory"]
    if wildcards.graph == THEORY_GRAPH:
        g = t["graph"]
        source = (
            f"--users {g['users']} --items {g['items']} --interactions {g['interactions']}"
            f" --zipf-exponent {g['zipf_exponent']} --graph-seed {g['seed']}"
        )
    else:
        source = f"--split {theory_split(wildcards)[0]} --name {wildcards.graph}"
    return (
        f"{source} --scenarios {' '.join(t['scenarios'])}"
        f" --batch-fractions {' '.join(map(str, t['batch_fractions']))}"
        f" --steps {t['steps']} --burn-in {t['burn_in']} --dim {t['dim']} --lr {t['lr']}"
        f" --weight-decay {t['weight_decay']} --cos-sq {t['cos_sq']} --negatives {t['negatives']}"
        f" --degree-bins {t['degree_bins']} --seed {t['seed']} --device {t['device']}"
    )


def figure_theory_tables(wildcards):
    """Figure 7 draws the power-law graph's simulation; other figures none."""
    return [theory_table(wildcards.preset, THEORY_GRAPH)] if wildcards.figure == "fig7" else []


def claims_theory_tables(wildcards):
    """The claims table checks the theory on every simulated graph; other tables read none."""
    if wildcards.table != "claims":
        return []
    return [theory_table(wildcards.preset, g) for g in theory_graphs()]


rule simulate:
    input:
        theory_split,
    output:
        "results/{preset}/theory/{graph}.parquet",
    log:
        "results/{preset}/logs/simulate/{graph}.log",
    wildcard_constraints:
        graph="|".join(re.escape(g) for g in theory_graphs()),
    conda:
        "../../envs/prism.yaml"
    threads: 1
    params:
        args=simulate_args,
    shell:
        "python -m prism_repro simulate {params.args} --threads {threads} --out {output} 2> {log}"
