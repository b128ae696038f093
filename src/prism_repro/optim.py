"""Adam for the engine: torch's fused Adam kernel, called without ``torch.optim``'s wrappers.

``torch.optim.Optimizer.step`` and ``add_param_group`` import ``torch._dynamo`` on first use
(for graph breaks under ``torch.compile``, which the engine never uses): 2-3 s of every training
process, more than a whole tiny run. :class:`FusedAdam` runs the same kernel
(``torch._fused_adam_``, what ``torch.optim.Adam(fused=True)`` calls) on the same state, so the
update is bit-identical (tests/test_optim.py), and its ``state_dict`` has ``torch.optim.Adam``'s
layout, so a checkpoint written by either loads in the other.
"""

from __future__ import annotations

import torch

# torch.optim.Adam's defaults, and the group keys its state_dict carries
BETAS = (0.9, 0.999)
EPS = 1e-8
_GROUP_FLAGS = {
    "amsgrad": False,
    "maximize": False,
    "foreach": None,
    "capturable": False,
    "differentiable": False,
    "fused": True,
    "decoupled_weight_decay": False,
}


def has_fused_adam(device: torch.device) -> bool:
    """Whether torch has a fused Adam kernel for this device type."""
    return device.type in ("cpu", "cuda") and hasattr(torch, "_fused_adam_")


class FusedAdam:
    """Adam with coupled L2 ``weight_decay`` per parameter group, as ``torch.optim.Adam``."""

    def __init__(self, params, lr: float, weight_decay: float = 0.0):
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups = [
            {
                "lr": lr,
                "betas": BETAS,
                "eps": EPS,
                "weight_decay": weight_decay,
                **_GROUP_FLAGS,
                **group,
                "params": list(group["params"]),
            }
            for group in groups
        ]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    def _state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        if p not in self.state:
            self.state[p] = {
                "step": torch.tensor(0.0, dtype=torch.float32, device=p.device),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
        return self.state[p]

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            states = [self._state(p) for p in params]
            steps = [s["step"] for s in states]
            torch._foreach_add_(steps, 1)
            beta1, beta2 = group["betas"]
            torch._fused_adam_(
                params,
                [p.grad for p in params],
                [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                [],
                steps,
                amsgrad=False,
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
                grad_scale=None,
                found_inf=None,
            )

    def state_dict(self) -> dict:
        """``torch.optim.Adam.state_dict``'s layout: parameters by their index over the groups."""
        index: dict[torch.Tensor, int] = {}
        groups = []
        for group in self.param_groups:
            ids = [index.setdefault(p, len(index)) for p in group["params"]]
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[p]: dict(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        saved = state_dict["param_groups"]
        if [len(g["params"]) for g in saved] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("optimizer state does not match the model's parameter groups")
        by_index = {}
        for group, saved_group in zip(self.param_groups, saved):
            for k in ("lr", "betas", "eps", "weight_decay"):
                group[k] = saved_group[k]
            by_index.update(zip(saved_group["params"], group["params"]))
        self.state = {}  # copies, as torch's load_state_dict makes: the saved dict stays apart
        for i, s in state_dict["state"].items():
            p = by_index[int(i)]
            self.state[p] = {
                "step": s["step"].to(torch.float32).reshape(()).to(p.device, copy=True),
                "exp_avg": s["exp_avg"].to(p.device, p.dtype, copy=True),
                "exp_avg_sq": s["exp_avg_sq"].to(p.device, p.dtype, copy=True),
            }
