"""FusedAdam (prism_repro.optim): bit-identical to torch.optim.Adam(fused=True), checkpoints
interchangeable with it, and no torch._dynamo import on the way."""

import io
import subprocess
import sys

import pytest
import torch

from prism_repro.optim import FusedAdam


def _model_and_groups(seed: int):
    gen = torch.Generator().manual_seed(seed)
    tables = [torch.randn(50, 8, generator=gen).requires_grad_() for _ in range(2)]
    other = torch.randn(8, 8, generator=gen).requires_grad_()
    groups = [{"params": tables, "weight_decay": 1e-3}, {"params": [other], "weight_decay": 0.0}]
    return tables + [other], groups


def _steps(params, opt, n: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for i in range(n):
        opt.zero_grad(set_to_none=True)
        loss = sum((p * torch.randn(p.shape, generator=gen)).sum() ** 2 for p in params)
        if i % 3 == 2:  # a step where one parameter has no gradient (skipped, as torch does)
            params[2].grad = None
            loss = sum((p * torch.randn(p.shape, generator=gen)).sum() ** 2 for p in params[:2])
        loss.backward()
        opt.step()


def test_updates_equal_torch_fused_adam_bit_for_bit():
    ours, our_groups = _model_and_groups(0)
    theirs, their_groups = _model_and_groups(0)
    _steps(ours, FusedAdam(our_groups, lr=0.01, weight_decay=1e-3), 7, seed=1)
    _steps(theirs, torch.optim.Adam(their_groups, lr=0.01, weight_decay=1e-3, fused=True), 7, 1)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    assert not torch.equal(ours[0], _model_and_groups(0)[0][0])  # it did move


@pytest.mark.parametrize("direction", ["ours_to_torch", "torch_to_ours"])
def test_checkpoints_load_across_both_and_continue_identically(direction):
    make_ours = lambda g: FusedAdam(g, lr=0.01, weight_decay=1e-3)  # noqa: E731
    make_torch = lambda g: torch.optim.Adam(g, lr=0.01, weight_decay=1e-3, fused=True)  # noqa: E731
    first, second = (
        (make_ours, make_torch) if direction == "ours_to_torch" else (make_torch, make_ours)
    )
    params, groups = _model_and_groups(2)
    opt = first(groups)
    _steps(params, opt, 4, seed=3)
    buffer = io.BytesIO()  # through a file, as a checkpoint goes
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    # resumed: a fresh model from the saved values, the other optimizer, the saved state
    resumed, resumed_groups = _model_and_groups(2)
    with torch.no_grad():
        for r, p in zip(resumed, params):
            r.copy_(p)
    other = second(resumed_groups)
    other.load_state_dict(saved)
    _steps(params, opt, 3, seed=4)
    _steps(resumed, other, 3, seed=4)
    for a, b in zip(params, resumed):
        assert torch.equal(a, b)


def test_state_of_another_grouping_is_refused():
    params, groups = _model_and_groups(0)
    opt = FusedAdam(groups, lr=0.01)
    _steps(params, opt, 1, seed=0)
    other = FusedAdam([{"params": params}], lr=0.01)
    with pytest.raises(ValueError, match="parameter groups"):
        other.load_state_dict(opt.state_dict())


def test_training_steps_do_not_import_dynamo():
    code = (
        "import sys, torch\n"
        "from prism_repro.optim import FusedAdam\n"
        "p = torch.randn(4, 3, requires_grad=True)\n"
        "opt = FusedAdam([p], lr=0.1)\n"
        "(p ** 2).sum().backward(); opt.step(); opt.zero_grad()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
