# Training: one job per run; checkpoints go to the run's undeclared work/ folder so a killed or
# requeued job resumes instead of starting over.


rule train:
    input:
        split=run_split,
        degrees=run_degrees,
    output:
        model="results/{preset}/runs/{dataset}/{run}/model.pt",
        epochs="results/{preset}/runs/{dataset}/{run}/epochs.parquet",
    log:
        "results/{preset}/logs/train/{dataset}/{run}.log",
    conda:
        "../../envs/prism.yaml"
    params:
        engine=engine_args,
    shell:
        "python -m prism_repro train --run {wildcards.run} --dataset {wildcards.dataset}"
        " --split {input.split} --degrees {input.degrees}"
        " --out-model {output.model} --out-epochs {output.epochs} {params.engine} 2> {log}"
