# Evaluation: per-run test/validation NDCG (overall and by popularity) and embedding norms;
# then one parquet per experiment with a row per run.


rule evaluate:
    input:
        model="results/{preset}/runs/{dataset}/{run}/model.pt",
        split=run_split,
        degrees=run_degrees,
    output:
        metrics="results/{preset}/runs/{dataset}/{run}/metrics.parquet",
        norms="results/{preset}/runs/{dataset}/{run}/norms.parquet",
    log:
        "results/{preset}/logs/evaluate/{dataset}/{run}.log",
    conda:
        "../../envs/prism.yaml"
    params:
        k=config["evaluate"]["k"],
    shell:
        "python -m prism_repro evaluate --model {input.model} --split {input.split}"
        " --degrees {input.degrees} --out-metrics {output.metrics} --out-norms {output.norms}"
        " --k {params.k} 2> {log}"


rule aggregate:
    input:
        experiment_metrics,
    output:
        "results/{preset}/metrics/{experiment}.parquet",
    log:
        "results/{preset}/logs/aggregate/{experiment}.log",
    localrule: True
    conda:
        "../../envs/prism.yaml"
    shell:
        "python -m prism_repro aggregate --experiment {wildcards.experiment} --in {input}"
        " --out {output} 2> {log}"
