"""Where the supervised optimizer's state lives between supervised updates. Pure torch.

The supervised AdamW is a second optimizer over the actor's parameters: two fp32 tensors per parameter
(8 bytes x parameters / FSDP size on each GPU), which veRL did not plan GPU memory for. Moved to the
GPU for a supervised update and back to CPU memory after it (and after a checkpoint load), it costs
no GPU memory between updates. The CPU copies live in page-locked buffers allocated once and reused:
a copy from the GPU into pageable memory ran at 1.7 GiB/s on an H100 (6.7 s for a 1.5B model's
11.5 GiB of state); bench/gpu_sft_memory.py measures both.
"""

from __future__ import annotations

import torch

_PINNED = "_relift_pinned_state"


@torch.no_grad()
def move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device | str, pin: bool = True) -> int:
    """Move every tensor in `optimizer.state` to `device` (AdamW's `step` counters stay where AdamW
    keeps them, on the CPU unless capturable). From a GPU to the CPU with `pin`, the state goes into
    page-locked buffers kept on the optimizer for the next move. Returns the bytes that changed device."""
    device = torch.device(device)
    buffers = optimizer.__dict__.setdefault(_PINNED, {})
    moved, asynchronous = 0, False
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if not isinstance(value, torch.Tensor) or key == "step" or value.device == device:
                continue
            if device.type == "cpu" and value.is_cuda and pin:
                buffer = buffers.get((id(param), key))
                if buffer is None or buffer.shape != value.shape or buffer.dtype != value.dtype:
                    buffer = buffers[(id(param), key)] = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
                state[key] = buffer.copy_(value, non_blocking=True)
                asynchronous = True
            else:
                state[key] = value.to(device, non_blocking=value.is_pinned())
                asynchronous |= value.is_pinned()
            moved += value.numel() * value.element_size()
    if asynchronous:
        torch.cuda.synchronize()
    return moved


def state_bytes(optimizer: torch.optim.Optimizer, device_type: str) -> int:
    """Bytes of optimizer state held on devices of `device_type` ("cuda", "cpu")."""
    return sum(
        value.numel() * value.element_size()
        for state in optimizer.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor) and value.device.type == device_type
    )
