"""The supervised half of ReLIFT: demonstrations to token tensors, and the token-mean NLL loss.

Pure torch: no veRL, no Ray. `relift.workers` wraps `sft_loss` into veRL's loss-function signature and
`relift.interleave` calls `build_sft_batch` on the driver; what each update trains on is `relift.sft_plan`.

Layout of a supervised batch (B demonstrations), identical to veRL's RL layout so that the actor's
forward pass is reused unchanged:

    prompts        (B, P)      left-padded prompt ids
    responses      (B, R)      demonstration ids, then EOS, right-padded
    input_ids      (B, P + R)  prompts ++ responses
    attention_mask (B, P + R)  1 on real tokens
    position_ids   (B, P + R)  0.. over real tokens
    response_mask  (B, R)      1 on demonstration tokens and the EOS: the only tokens the loss sees
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from relift.padding import pad


def demonstration_text(target) -> str | None:
    """The demonstration in a dataset row's `target`: a chat-message list or a plain string.

    Returns None when the row has no usable demonstration (such a question cannot enter the buffer).
    """
    if target is None:
        return None
    if isinstance(target, str):
        return target or None
    messages = list(target)
    for message in messages:
        if message.get("role") == "assistant" and message.get("content"):
            return message["content"]
    return None


@dataclass
class SFTBatch:
    tensors: dict[str, torch.Tensor]
    truncated: int
    """Demonstrations that did not fit with their EOS in max_target_len tokens: cut to max_target_len and
    given no EOS (the solution did not end there)."""


def build_sft_batch(
    prompt_ids: list[list[int]],
    demonstration_ids: list[list[int]],
    *,
    eos_token_id: int,
    pad_token_id: int,
    max_target_len: int,
) -> SFTBatch:
    """Pack B (prompt, demonstration) pairs into veRL's left/right-padded layout (see module docstring).

    `max_target_len` bounds a response, EOS included, so that a supervised sequence is never longer than
    an RL response of `max_response_length = max_target_len` tokens. A demonstration that does not fit
    with its EOS keeps its first `max_target_len` tokens, gets no EOS and is counted in `truncated`;
    every other one gets EOS appended. No token is overwritten.
    """
    if len(prompt_ids) != len(demonstration_ids) or not prompt_ids:
        raise ValueError(f"need as many prompts as demonstrations, got {len(prompt_ids)} and {len(demonstration_ids)}")
    truncated = 0
    responses = []
    for ids in demonstration_ids:
        if len(ids) >= max_target_len:
            responses.append(list(ids[:max_target_len]))
            truncated += 1
        else:
            responses.append(list(ids) + [eos_token_id])

    prompts, prompt_mask = pad(prompt_ids, pad_token_id, side="left")
    response, response_mask = pad(responses, pad_token_id, side="right")

    attention_mask = torch.cat([prompt_mask, response_mask], dim=1)
    position_ids = (torch.cumsum(attention_mask, dim=1) - 1).clamp(min=0) * attention_mask
    tensors = {
        "prompts": prompts,
        "responses": response,
        "input_ids": torch.cat([prompts, response], dim=1),
        "attention_mask": attention_mask,
        "position_ids": position_ids,
        "response_mask": response_mask,
    }
    return SFTBatch(tensors=tensors, truncated=truncated)


TOKEN_WEIGHTINGS = ("nll", "chord", "trust_region")


def token_weights(log_probs: torch.Tensor, weighting: str, trust_region_alpha: float) -> torch.Tensor | None:
    """Per-token weights on the demonstration NLL, as functions of the token's probability p under the
    policy, without gradient (log_probs: (b, R); returns (b, R), or None for plain NLL):

    - "nll": 1 (plain SFT);
    - "chord": p (1 - p), CHORD's phi (arXiv 2508.11408): tokens the policy is already sure
      of, or finds very unlikely, move it less;
    - "trust_region": p / max(p, alpha), TRAPO's trust-region SFT (arXiv 2512.17636): the
      gradient of -log p inside the trust region p >= alpha, of -p / alpha outside it, so that a token the
      policy finds very unlikely no longer gets a 1/p-sized push.
    """
    if weighting == "nll":
        return None
    p = log_probs.detach().exp()
    if weighting == "chord":
        return p * (1 - p)
    if weighting == "trust_region":
        return (p / trust_region_alpha).clamp(max=1.0)
    raise ValueError(f"unknown supervised token weighting {weighting!r}; expected one of {TOKEN_WEIGHTINGS}")


def sft_loss(
    log_probs: torch.Tensor,
    entropy: torch.Tensor | None,
    response_mask: torch.Tensor,
    *,
    global_num_tokens: float,
    dp_size: int,
    entropy_coeff: float,
    weighting: str = "nll",
    trust_region_alpha: float = 0.1,
    sequence_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-mean (weighted) NLL over the demonstration tokens of the whole (global) supervised batch.

    log_probs, entropy, response_mask: (b, R) for this rank's micro-batch.
    sequence_weights: (b,) loss weight of each sequence's tokens (`anchor_weight` on replayed own
    responses), or None for 1; the mean still divides by the token count.
    global_num_tokens: demonstration tokens in the mini-batch summed over all data-parallel ranks.
    The sum is multiplied by dp_size because data-parallel gradient reduction averages over ranks:
    the reduced gradient is then exactly that of the global token mean, whatever the world size.
    weighting, trust_region_alpha: see `token_weights`; the mean divides by the token count, not by
    the sum of the weights, as both sources do.

    Returns (loss to backpropagate, this micro-batch's plain NLL summed over its tokens / global tokens).
    """
    mask = response_mask.to(log_probs.dtype)
    nll = -(log_probs * mask).sum() / global_num_tokens
    weights = token_weights(log_probs, weighting, trust_region_alpha)
    if sequence_weights is not None:
        seq = sequence_weights.to(log_probs.dtype)[:, None]
        weights = seq if weights is None else weights * seq
    loss = nll if weights is None else -(weights * log_probs * mask).sum() / global_num_tokens
    if entropy is not None and entropy_coeff != 0.0:
        loss = loss - entropy_coeff * (entropy * mask).sum() / global_num_tokens
    return loss * dp_size, nll.detach()
