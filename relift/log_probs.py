"""Per-token log-probabilities without a Python loop over tokens, for veRL's CPU fallback.

Without flash-attn's cross-entropy kernel (so on CPU), veRL 0.9.1's `logprobs_from_logits` calls
`logprobs_from_logits_v2`, which loops in Python over the first dimension to bound peak memory. In the
no-padding layout relift trains with on CPU, that dimension is every token of the micro-batch: one
`logsumexp` per token forward and one autograd node per token backward, a large share of an update's
time on CPU (bench/README.md, "Log-probabilities in chunks"). This version
computes the same values over chunks of rows, which bounds peak memory the same way.
"""

from __future__ import annotations

import torch

# Elements of one chunk of logits (64 MiB in float32): a 151,936-token vocabulary gives 110 rows a chunk,
# the toy's whole micro-batch fits in one.
CHUNK_ELEMENTS = 2**24


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[label] per row.

    logits: (..., vocab_size), float; labels: (...) token ids. Returns (...) in logits' dtype, the values
    and gradients of veRL's `logprobs_from_logits_v2` (log_softmax(x)_i = x_i - logsumexp(x)).
    """
    vocab = logits.shape[-1]
    flat, flat_labels = logits.reshape(-1, vocab), labels.reshape(-1, 1)
    rows = max(1, CHUNK_ELEMENTS // vocab)
    chunks = [
        torch.log_softmax(part, dim=-1).gather(-1, part_labels).squeeze(-1)
        for part, part_labels in zip(flat.split(rows), flat_labels.split(rows), strict=True)
    ]
    return torch.cat(chunks).view(labels.shape)
