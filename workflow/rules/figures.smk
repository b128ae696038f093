# Figures: each reads aggregated metrics only, so a plotting change reruns just the plot.

FIGURES = ["fig1"]


rule figure:
    input:
        "results/{preset}/metrics/{figure}.parquet",
    output:
        png=report(
            "results/{preset}/figures/{figure}.png",
            caption="../report/{figure}.rst",
            category="Figures",
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
        "python -m prism_repro figure {wildcards.figure} --in {input} --out-png {output.png}"
        " --out-pdf {output.pdf} --style {params.style} --context {params.context}"
        " --dpi {params.dpi} 2> {log}"
