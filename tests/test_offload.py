"""relift.offload on CPU. The device moves themselves (GPU <-> pinned CPU memory, bit-identical round trip,
11.5 GiB freed for a 1.5B model) are measured on a GPU by bench/gpu_sft_memory.py (docs/training.md)."""

import pytest
import torch

from relift.offload import move_optimizer_state, state_bytes


def stepped_adamw():
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 16)).square().mean().backward()
    optimizer.step()
    return model, optimizer


def test_state_is_two_fp32_tensors_per_parameter_and_cpu_moves_are_free():
    model, optimizer = stepped_adamw()
    params = sum(p.numel() for p in model.parameters())
    assert state_bytes(optimizer, "cpu") == 8 * params + 4 * 2  # exp_avg, exp_avg_sq + one step counter each
    before = {k: v.clone() for k, v in optimizer.state[model.weight].items()}
    assert move_optimizer_state(optimizer, "cpu") == 0
    assert all(torch.equal(before[k], v) for k, v in optimizer.state[model.weight].items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_round_trip_through_pinned_memory_is_exact():
    model, optimizer = stepped_adamw()
    model.cuda()
    move_optimizer_state(optimizer, "cuda")
    before = {k: v.cpu() for k, v in optimizer.state[model.weight].items()}
    assert move_optimizer_state(optimizer, "cpu") == 8 * sum(p.numel() for p in model.parameters())
    assert state_bytes(optimizer, "cuda") == 0 and optimizer.state[model.weight]["exp_avg"].is_pinned()
    move_optimizer_state(optimizer, "cuda")
    assert all(torch.equal(before[k], v.cpu()) for k, v in optimizer.state[model.weight].items())
