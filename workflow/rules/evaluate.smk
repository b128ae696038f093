# Evaluation across runs (each run's own metrics come from its train job): selection of tuned
# settings on validation (a checkpoint: the final runs depend on it), then one set of tables per
# experiment over its final runs.


checkpoint select:
    input:
        candidate_metrics,
    output:
        "results/{preset}/metrics/{experiment}_selection.parquet",
    log:
        "results/{preset}/logs/select/{experiment}.log",
    localrule: True
    conda:
        "../../envs/prism.yaml"
    params:
        tune=experiment_tune,
        seeds=experiment_seeds,
    shell:
        "python -m prism_repro select --experiment {wildcards.experiment} --tune {params.tune}"
        " --seeds {params.seeds} --in {input} --out {output} 2> {log}"


rule aggregate:
    input:
        metrics=final_run_files("metrics.parquet"),
        epochs=final_run_files("epochs.parquet"),
        norms=final_run_files("norms.parquet"),
    output:
        metrics="results/{preset}/metrics/{experiment}.parquet",
        epochs="results/{preset}/metrics/{experiment}_epochs.parquet",
        norms="results/{preset}/metrics/{experiment}_norms.parquet",
    log:
        "results/{preset}/logs/aggregate/{experiment}.log",
    localrule: True
    conda:
        "../../envs/prism.yaml"
    shell:
        "python -m prism_repro aggregate --experiment {wildcards.experiment}"
        " --metrics {input.metrics} --epochs {input.epochs} --norms {input.norms}"
        " --out-metrics {output.metrics} --out-epochs {output.epochs}"
        " --out-norms {output.norms} 2> {log}"
