"""relift.workers.sft_loss_fn on veRL's own no-padding layout: the glue between veRL's micro-batch and
relift.sft.sft_loss (no Ray, no model)."""

import pytest
import torch
from verl import DataProto
from verl.utils import tensordict_utils as tu
from verl.workers.utils.padding import left_right_2_no_padding

from relift.sft import build_sft_batch
from relift.workers import sft_loss_fn


def test_loss_fn_weighs_each_sequence_as_the_batch_says():
    batch = build_sft_batch([[5, 6, 7], [8]], [[11, 12], [13, 14, 15]], eos_token_id=99, pad_token_id=0,
                            max_target_len=8).tensors
    weights = torch.tensor([1.0, 4.0])  # a new demonstration, then a replayed own response
    data = left_right_2_no_padding(DataProto.from_dict(tensors={**batch, "sft_weights": weights}).to_tensordict())
    tokens = int(batch["response_mask"].sum())
    tu.assign_non_tensor(data, batch_num_tokens=tokens, dp_size=1)
    # The model's log-prob of each token of each (unpadded) sequence: -0.1, -0.2, ... along the sequence.
    lengths = batch["attention_mask"].sum(-1).tolist()
    log_probs = torch.nested.nested_tensor_from_jagged(
        torch.cat([-0.1 * torch.arange(1, n + 1, dtype=torch.float32) for n in lengths]),
        offsets=torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()]))

    loss, metrics = sft_loss_fn({"log_probs": log_probs}, data, entropy_coeff=0.0, weighting="nll",
                                trust_region_alpha=0.1)

    # Sequence 1: 3 prompt + 3 response tokens (2 + EOS), sequence 2: 1 + 4; a response token's log-prob is
    # the model's output at the position before it (veRL shifts by one).
    first = [0.3, 0.4, 0.5]
    second = [0.1, 0.2, 0.3, 0.4]
    assert loss.item() == pytest.approx((sum(first) + 4 * sum(second)) / tokens)
    assert metrics["relift/sft_nll"].aggregate() == pytest.approx((sum(first) + sum(second)) / tokens)
