# Theory: Monte-Carlo check of Observation 1, Theorem 3.1 and Corollaries 1-2 (prism_repro.simulate),
# one simulation per graph (config `theory`): the synthetic power-law graph `powerlaw` and the train
# split of each dataset in theory.datasets. Figure 7 reads `powerlaw`; the claims table reads all.
# Input functions: common.smk.


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
