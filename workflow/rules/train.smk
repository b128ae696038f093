# Training: one job per run, which trains, then evaluates the best state (test and validation
# NDCG overall and by popularity, embedding norms). Checkpoints go to the run's undeclared work/
# folder so a killed or requeued job resumes instead of starting over.


rule train:
    input:
        split=run_split,
        degrees=run_degrees,
    output:
        model="results/{preset}/runs/{dataset}/{run}/model.pt",
        epochs="results/{preset}/runs/{dataset}/{run}/epochs.parquet",
        metrics="results/{preset}/runs/{dataset}/{run}/metrics.parquet",
        norms="results/{preset}/runs/{dataset}/{run}/norms.parquet",
    log:
        "results/{preset}/logs/train/{dataset}/{run}.log",
    # on a cluster, runs are packed into SLURM jobs (run_pack, packs.smk; docs/cluster.md)
    group:
        run_pack
    conda:
        "../../envs/prism.yaml"
    # how many runs share a GPU is how, not what: a resource, not a param (changing it reruns
    # nothing); each job takes a slot of the GPU slot pool (prism_repro.devices)
    # one CPU thread per run: on a few cores, runs side by side beat threads that wait for each
    # other (README, Benchmarks); a profile may raise it (set-threads: {train: 4})
    threads: 1
    resources:
        runs_per_gpu=config["runs_per_gpu"],
    params:
        engine=engine_args,
    shell:
        "python -m prism_repro train --run {wildcards.run} --dataset {wildcards.dataset}"
        " --split {input.split} --degrees {input.degrees} --out-model {output.model}"
        " --out-epochs {output.epochs} --out-metrics {output.metrics} --out-norms {output.norms}"
        " --runs-per-gpu {resources.runs_per_gpu} --threads {threads} {params.engine} 2> {log}"
