# Figures: each reads aggregated experiment tables only, so a plotting change reruns just the plot.
# Which experiments feed which figure: FIGURE_EXPERIMENTS in prism_repro/artifacts.py; Figure 7
# reads the theory simulation (theory.smk).


rule figure:
    input:
        metrics=experiment_tables(""),
        epochs=experiment_tables("_epochs"),
        norms=experiment_tables("_norms"),
        theory=figure_theory_tables,
    output:
        png=report(
            "results/{preset}/figures/{figure}.png",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{figure}"},
        ),
        pdf="results/{preset}/figures/{figure}.pdf",
    log:
        "results/{preset}/logs/figure/{figure}.log",
    localrule: True
    conda:
        "../../envs/prism.yaml"
    params:
        style=config["figures"]["style"],
        context=config["figures"]["context"],
        dpi=config["figures"]["dpi"],
    shell:
        "python -m prism_repro figure {wildcards.figure} --metrics {input.metrics}"
        " --epochs {input.epochs} --norms {input.norms} --theory {input.theory}"
        " --out-png {output.png}"
        " --out-pdf {output.pdf} --style {params.style} --context {params.context}"
        " --dpi {params.dpi} 2> {log}"
