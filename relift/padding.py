"""Token lists to one padded tensor. Pure torch."""

from __future__ import annotations

import torch


def pad(sequences: list[list[int]], pad_token_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), each (B, longest): sequences padded on the "left" (prompts, so that generation continues
    from the right edge) or the "right" (responses); mask is 1 on real tokens."""
    longest = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), longest), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for i, sequence in enumerate(sequences):
        span = slice(longest - len(sequence), longest) if side == "left" else slice(0, len(sequence))
        ids[i, span] = torch.tensor(sequence, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask
