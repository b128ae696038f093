"""The paper's artifacts and the experiments each one reads (one place; torch-free, so the
workflow reads it while building the DAG). A preset builds an artifact when it defines all of
the artifact's experiments; the claims table checks the claims whose experiments it runs.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["FIGURE_EXPERIMENTS", "TABLE_EXPERIMENTS", "CLAIM_EXPERIMENTS", "needed_experiments"]

# figure -> experiments (config `experiments:`) whose aggregated tables it reads
FIGURE_EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "fig1": ("fig1",),
    "fig2": ("fig1",),
    "fig3": ("fig3",),
    "fig4": ("fig4", "table1_wd"),
    "fig5": ("fig4",),
    "fig6": ("fig6",),
    "fig7": (),
    "fig8": ("fig8",),
    "fig9": ("fig9", "fig4"),  # the baselines, and PRISM + DirectAU from the alpha sweep
    "fig10": ("fig10",),
    "fig11": ("fig11",),
}
CLAIM_EXPERIMENTS: tuple[str, ...] = (
    "table1_wd",
    "table1_prism",
    "fig1",
    "fig3",
    "fig4",
    "fig8",
    "fig9",
)
# table -> experiments; "runs" lists every experiment's runs, "claims" those it can check
TABLE_EXPERIMENTS: dict[str, tuple[str, ...] | None] = {
    "table1": ("table1_wd", "table1_prism"),
    "table2": (),
    "runs": None,  # every experiment of the preset
    "claims": None,  # the claim experiments the preset runs
}


def needed_experiments(artifact: str, experiments: Mapping) -> list[str]:
    """The experiments an artifact reads under a preset that defines ``experiments``."""
    if artifact in FIGURE_EXPERIMENTS:
        return list(FIGURE_EXPERIMENTS[artifact])
    if artifact == "runs":
        return list(experiments)
    if artifact == "claims":
        return [e for e in CLAIM_EXPERIMENTS if e in experiments]
    return list(TABLE_EXPERIMENTS[artifact])


def available(names, experiments: Mapping) -> list[str]:
    """Artifacts among ``names`` whose experiments the preset defines, in order."""
    return [n for n in names if all(e in experiments for e in needed_experiments(n, experiments))]
