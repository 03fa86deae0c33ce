import pytest
import torch

from relift.layout import strip_think_prefix
from relift.sft import TOKEN_WEIGHTINGS, build_sft_batch, demonstration_text, sft_loss, token_weights

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
