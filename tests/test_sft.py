import pytest
import torch

from relift.layout import strip_think_prefix
from relift.sft import (
    TOKEN_WEIGHTINGS,
    anchor_weight,
    build_sft_batch,
    demonstration_text,
    micro_batching,
    replay_draws,
    sft_loss,
    token_weights,
)

EOS, PAD = 99, 0


def test_layout_masks_only_demonstration_and_eos():
    batch = build_sft_batch([[5, 6, 7], [8]], [[11, 12], [13, 14, 15]], eos_token_id=EOS, pad_token_id=PAD,
                            max_target_len=8)
    t = batch.tensors
    assert t["prompts"].tolist() == [[5, 6, 7], [PAD, PAD, 8]]
    assert t["responses"].tolist() == [[11, 12, EOS, PAD], [13, 14, 15, EOS]]
    assert t["response_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert t["input_ids"].shape == (2, 7)
    assert t["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1, 1]]
    assert t["position_ids"][1].tolist()[2:] == [0, 1, 2, 3, 4]
    assert batch.truncated == 0


def test_truncation_is_counted_and_never_overwrites_a_token():
    demo = list(range(10, 20))
    batch = build_sft_batch([[1]], [demo], eos_token_id=EOS, pad_token_id=PAD, max_target_len=4)
    assert batch.truncated == 1
    assert batch.tensors["responses"].tolist() == [[10, 11, 12, 13]]
    # max_target_len counts the EOS: a response is never longer than max_target_len tokens (veRL's dynamic
    # batching asserts its token budget covers the longest sequence), so an exact fit loses its EOS.
    exact = build_sft_batch([[1]], [demo[:4]], eos_token_id=EOS, pad_token_id=PAD, max_target_len=4)
    assert exact.truncated == 1 and exact.tensors["responses"].tolist() == [[10, 11, 12, 13]]
    fits = build_sft_batch([[1]], [demo[:3]], eos_token_id=EOS, pad_token_id=PAD, max_target_len=4)
    assert fits.truncated == 0 and fits.tensors["responses"].tolist() == [[10, 11, 12, EOS]]


def test_loss_sees_only_masked_tokens():
    log_probs = torch.tensor([[-1.0, -2.0, -100.0], [-3.0, -100.0, -100.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    loss, nll = sft_loss(log_probs, None, mask, global_num_tokens=3.0, dp_size=1, entropy_coeff=0.0)
    assert nll.item() == pytest.approx(2.0) and loss.item() == pytest.approx(2.0)


def test_loss_is_global_token_mean_across_ranks():
    # Two ranks each hold half of the tokens; data-parallel reduction averages their gradients.
    log_probs = torch.tensor([[-1.0, -3.0]], requires_grad=True)
    mask = torch.ones(1, 2)
    loss, _ = sft_loss(log_probs, None, mask, global_num_tokens=4.0, dp_size=2, entropy_coeff=0.0)
    loss.backward()
    # averaged over 2 ranks, each token's gradient is -1/4: the gradient of the mean over all 4 tokens
    assert (log_probs.grad / 2).tolist() == [[-0.25, -0.25]]


def test_sequence_weights_scale_each_sequence_and_keep_the_token_mean():
    log_probs = torch.tensor([[-1.0, -2.0], [-3.0, -100.0]], requires_grad=True)
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, nll = sft_loss(log_probs, None, mask, global_num_tokens=3.0, dp_size=1, entropy_coeff=0.0,
                         sequence_weights=torch.tensor([1.0, 4.0]))
    assert loss.item() == pytest.approx((1 + 2 + 4 * 3) / 3) and nll.item() == pytest.approx(2.0)  # nll: unweighted
    loss.backward()
    assert log_probs.grad.flatten().tolist() == pytest.approx([-1 / 3, -1 / 3, -4 / 3, 0.0])
    # with a per-token weighting the two weights multiply
    weighted, _ = sft_loss(log_probs, None, mask, global_num_tokens=3.0, dp_size=1, entropy_coeff=0.0,
                           weighting="trust_region", trust_region_alpha=1.0, sequence_weights=torch.tensor([1.0, 4.0]))
    p = log_probs.detach().exp()
    assert weighted.item() == pytest.approx(-(p[0, 0] * -1 + p[0, 1] * -2 + 4 * p[1, 0] * -3).item() / 3)


@pytest.mark.parametrize(("update", "weight", "decay", "expected"), [
    (0, 16.0, 20, 16.0),  # the first update weighs the configured value
    (10, 16.0, 20, 8.5),  # halfway down to 1
    (20, 16.0, 20, 1.0),
    (35, 16.0, 20, 1.0),  # and 1 after the decay
    (35, 4.0, 0, 4.0),  # no decay: constant
    (0, 1.0, 20, 1.0),  # 1: off
])
def test_anchor_weight_falls_linearly_to_one(update, weight, decay, expected):
    assert anchor_weight(update, weight, decay) == pytest.approx(expected)


def test_entropy_bonus_lowers_loss():
    log_probs = torch.full((1, 2), -1.0)
    entropy = torch.full((1, 2), 2.0)
    mask = torch.ones(1, 2)
    loss, nll = sft_loss(log_probs, entropy, mask, global_num_tokens=2.0, dp_size=1, entropy_coeff=0.001)
    assert nll.item() == pytest.approx(1.0) and loss.item() == pytest.approx(1.0 - 0.002)


def test_demonstration_formats():
    assert demonstration_text([{"role": "assistant", "content": "sol"}]) == "sol"
    assert demonstration_text("sol") == "sol"
    assert demonstration_text(None) is None and demonstration_text("") is None
    assert demonstration_text([{"role": "user", "content": "x"}]) is None


def test_think_prefix_stripped_only_when_prompt_opened_it():
    assert strip_think_prefix("...assistant\n<think>\n", "<think>\nreason</think>") == "reason</think>"
    assert strip_think_prefix("...assistant\n", "<think>\nreason</think>") == "<think>\nreason</think>"


def test_token_weightings_follow_their_sources():
    p = torch.tensor([[0.001, 0.05, 0.5, 0.999]])
    log_probs = p.log().requires_grad_()
    mask = torch.ones_like(p)
    grads = {}
    for weighting in TOKEN_WEIGHTINGS:
        log_probs.grad = None
        loss, nll = sft_loss(log_probs, None, mask, global_num_tokens=4.0, dp_size=1, entropy_coeff=0.0,
                             weighting=weighting, trust_region_alpha=0.1)
        loss.backward()
        grads[weighting] = -4 * log_probs.grad[0]  # each token's weight on -log p
        assert nll.item() == pytest.approx(-p.log().mean().item(), rel=1e-6)  # the logged NLL is plain
    assert grads["nll"].tolist() == pytest.approx([1, 1, 1, 1])
    assert grads["chord"].tolist() == pytest.approx((p * (1 - p))[0].tolist())
    # TRAPO: 1 inside the trust region p >= alpha, p / alpha below it.
    assert grads["trust_region"].tolist() == pytest.approx([0.01, 0.5, 1.0, 1.0])
    with pytest.raises(ValueError, match="unknown supervised token weighting 'kl'"):
        token_weights(log_probs, "kl", 0.1)


@pytest.mark.parametrize(("args", "expected"), [
    ((4, 28, 1, 32), (28, 32)),  # the toy: 4 new + 16 own + 12 taught, one forward
    ((4, 36, 1, 32), (36, 20)),  # 40: two forwards of 20 rather than cutting 8 to make one of 32
    ((4, 28, 1, 4), (28, 4)),
    ((4, 9, 1, 4), (8, 4)),  # a short pool: one replayed response cut, three forwards of 4
    ((4, 3, 1, 2), (2, 2)),  # 7 with at most 2: three forwards of 2, not seven of 1
    ((4, 13, 1, 32), (13, 17)),
    ((16, 7, 2, 4), (0, 4)),  # 6 over 2 ranks: 11 each, 3 cut per rank for two forwards of 4
    ((128, 384, 8, 2), (384, 2)),
    ((8, 0, 1, 8), (0, 8)),
    ((6, 0, 1, 4), (0, 3)),  # the paper's batch alone, two forwards of 3
    ((5, 0, 1, 4), (0, 1)),  # nothing to cut: five forwards of 1
    ((16, 7, 2, None), (6, None)),  # dynamic batch sizes: only the ranks matter
])
def test_micro_batching_splits_every_rank_into_whole_micro_batches(args, expected):
    new, replayed, ranks, largest = args
    kept, micro = micro_batching(*args)
    assert (kept, micro) == expected
    assert kept % ranks == 0 and kept <= replayed
    if micro is not None:
        share = (new + kept) // ranks
        assert share % micro == 0 and micro <= largest
        assert (replayed // ranks * ranks - kept) // ranks < micro  # fewer than one micro-batch cut per rank


def test_micro_batching_refuses_new_demonstrations_that_do_not_split():
    with pytest.raises(ValueError, match="3 new demonstrations do not split over 2"):
        micro_batching(3, 0, 2, 4)


@pytest.mark.parametrize(("args", "expected"), [
    ((16, 12, 0, 0, 1), (16, 12)),  # no warm-up: the configured counts
    ((16, 12, 0, 20, 1), (28, 0)),  # first update: 12 x 1/20 rounds down to none, own responses fill in
    ((16, 12, 9, 20, 1), (22, 6)),  # halfway
    ((16, 12, 19, 20, 1), (16, 12)),  # the last warm-up update reaches taught_share
    ((16, 12, 40, 20, 1), (16, 12)),
    ((8, 8, 4, 10, 4), (12, 4)),  # 8 x 5/10 = 4, a multiple of 4 ranks
    ((8, 8, 2, 10, 4), (16, 0)),  # 8 x 3/10 = 2.4, down to 0 on 4 ranks
])
def test_replay_draws_grow_taught_demonstrations_at_a_constant_batch(args, expected):
    own, taught, _, _, ranks = args
    draws = replay_draws(*args)
    assert draws == expected
    assert sum(draws) == own + taught and draws[1] % ranks == 0
