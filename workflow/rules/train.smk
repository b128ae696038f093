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
    # on a cluster, runs are packed into SLURM jobs (run_pack, common.smk; docs/cluster.md)
    group:
        run_pack
    conda:
        "../../envs/prism.yaml"
    params:
        engine=engine_args,
    # a GPU (locally) or a share of the pack's GPU (cluster): common.smk, "GPUs"; memory and
    # runtime per run are in profiles/default
    resources:
        gpu=train_gpu,
        gres=train_gres,
        gpu_permille=train_gpu_permille,
    # runs_per_gpu is how, not what: read from config in the command, not a param (no reruns)
    shell:
        "python -m prism_repro train --run {wildcards.run} --dataset {wildcards.dataset}"
        " --split {input.split} --degrees {input.degrees} --out-model {output.model}"
        " --out-epochs {output.epochs} --out-metrics {output.metrics} --out-norms {output.norms}"
        " --runs-per-gpu {config[runs_per_gpu]} {params.engine} 2> {log}"
