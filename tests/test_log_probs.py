"""relift.log_probs: the same log-probabilities and gradients as veRL's per-token loop, in chunks,
and what veRL calls once the CPU extension is loaded."""

import os
import subprocess
import sys

import pytest
import torch

from relift import cpu, log_probs


def loop_reference(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """veRL 0.9.1's float32 branch: one logsumexp per row."""
    return torch.gather(logits, -1, labels.unsqueeze(-1)).squeeze(-1) - torch.stack(
        [torch.logsumexp(row, dim=-1) for row in logits])


@pytest.mark.parametrize("chunk_elements", [2**24, 7 * 33])  # one chunk; chunks of 7 rows, the last shorter
def test_chunked_log_probs_match_the_per_token_loop(monkeypatch, chunk_elements):
    monkeypatch.setattr(log_probs, "CHUNK_ELEMENTS", chunk_elements)
    generator = torch.Generator().manual_seed(0)
    logits = (5 * torch.randn(100, 33, generator=generator)).requires_grad_()
    labels = torch.randint(0, 33, (100,), generator=generator)
    upstream = torch.randn(100, generator=generator)

    ours = log_probs.logprobs_from_logits(logits, labels)
    (grad_ours,) = torch.autograd.grad((ours * upstream).sum(), logits)
    reference = loop_reference(logits, labels)
    (grad_reference,) = torch.autograd.grad((reference * upstream).sum(), logits)

    assert ours.shape == labels.shape and ours.dtype == logits.dtype
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(grad_ours, grad_reference)


def test_leading_dimensions_and_bfloat16_are_kept():
    logits = torch.randn(2, 5, 11).to(torch.bfloat16)
    labels = torch.randint(0, 11, (2, 5))
    out = log_probs.logprobs_from_logits(logits, labels)
    assert out.shape == (2, 5) and out.dtype == torch.bfloat16
    expected = torch.log_softmax(logits.float(), -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out.float(), expected, atol=0.05, rtol=0.02)


def test_the_cpu_extension_routes_verl_to_the_chunked_version():
    """In a process where veRL loads relift's CPU extension, as every process of a device=cpu run does."""
    script = (
        "import torch, verl.utils.torch_functional as F\n"
        "from relift import log_probs\n"
        "assert F.logprobs_from_logits_v2 is log_probs.logprobs_from_logits, F.logprobs_from_logits_v2\n"
        "x, y = torch.randn(300, 17), torch.randint(0, 17, (300,))\n"
        "torch.testing.assert_close(F.logprobs_from_logits(x, y), torch.log_softmax(x, -1)[torch.arange(300), y])\n"
    )
    env = {**os.environ, **cpu.CPU_ENV}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
