"""relift's `hf` rollout server (relift/verl_ext/hf_rollout.py) as veRL's agent loop calls it, without Ray: the
option for CPU models whose head size vLLM's CPU attention lacks, and the rollout of the tests whose subject is
not the rollout. Its promises: samples that do not depend on how requests were batched, log-probs of the
sampled tokens at the sampling temperature (what `training/rollout_probs_diff_mean` compares with the actor),
and a weight sync that refuses parameters that do not fit."""

import asyncio
import re

import pytest
import torch
from helpers import HF_ROLLOUT, composed
from transformers import AutoModelForCausalLM

from relift.verl_ext.hf_rollout import HFRolloutServer

PROMPTS = [[5, 17, 42, 8], [9, 3], [5, 17, 42, 8], [30, 31, 32, 33, 34, 35]]  # one repeated, lengths differ


@pytest.fixture
def server(tiny):
    """A factory of servers on the tiny model; the torch thread count the server sets is restored after."""
    threads = torch.get_num_threads()
    config = composed("device=cpu", f"actor_rollout_ref.model.path={tiny['model']}", HF_ROLLOUT,
                      "data.max_response_length=12")
    yield lambda: HFRolloutServer(config.actor_rollout_ref.rollout, config.actor_rollout_ref.model, replica_rank=0)
    torch.set_num_threads(threads)


def ask(rollout: HFRolloutServer, prompts, together: bool, **sampling):
    async def one(i, prompt):
        return await rollout.generate(prompt, dict(sampling), request_id=str(i))

    async def main():
        if together:  # concurrent requests: the server decodes them as one left-padded batch
            return await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
        return [await one(i, p) for i, p in enumerate(prompts)]

    return asyncio.run(main())


def decoded_batch_sizes(rollout: HFRolloutServer) -> list[int]:
    sizes, decode = [], rollout._decode

    def counted(requests, *args):
        sizes.append(len(requests))
        return decode(requests, *args)

    rollout._decode = counted
    return sizes


def test_samples_do_not_depend_on_batching_and_a_repeated_prompt_gets_its_own_sample(server):
    together, alone = server(), server()
    sizes = {"together": decoded_batch_sizes(together), "alone": decoded_batch_sizes(alone)}
    batched = ask(together, PROMPTS, together=True, temperature=1.0)
    single = ask(alone, PROMPTS, together=False, temperature=1.0)
    assert sizes == {"together": [len(PROMPTS)], "alone": [1] * len(PROMPTS)}
    for a, b in zip(batched, single, strict=True):
        assert a.token_ids == b.token_ids
        assert a.log_probs == pytest.approx(b.log_probs, abs=1e-5)
    assert batched[0].token_ids != batched[2].token_ids  # same prompt, second ask: a new sample
    assert all(len(out.token_ids) <= 12 for out in batched)
    # A weight sync starts the count again: the same weights give the same first sample.
    asyncio.run(alone.update_weights(alone.model.state_dict()))
    assert ask(alone, PROMPTS[:1], together=False, temperature=1.0)[0].token_ids == single[0].token_ids


def test_log_probs_are_the_models_at_the_sampling_temperature(server, tiny):
    temperature = 0.7
    outputs = ask(server(), PROMPTS, together=True, temperature=temperature)
    model = AutoModelForCausalLM.from_pretrained(tiny["model"], dtype=torch.float32).eval()
    for prompt, out in zip(PROMPTS, outputs, strict=True):
        ids = torch.tensor([prompt + out.token_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1 : -1] / temperature
        expected = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(out.token_ids)[:, None])[:, 0]
        assert out.log_probs == pytest.approx(expected.tolist(), abs=1e-5)


def test_greedy_decoding_is_the_argmax_and_max_tokens_is_kept(server, tiny):
    out = ask(server(), PROMPTS[:1], together=False, temperature=0.0, max_tokens=3)[0]
    model = AutoModelForCausalLM.from_pretrained(tiny["model"], dtype=torch.float32).eval()
    with torch.no_grad():
        greedy = model.generate(torch.tensor([PROMPTS[0]]), max_new_tokens=3, do_sample=False)
    assert out.token_ids == greedy[0, len(PROMPTS[0]) :].tolist()  # both stop at 3 tokens or end-of-sequence


def test_the_weight_sync_loads_the_actors_weights_and_refuses_what_does_not_fit_before_loading(server):
    rollout = server()
    weights = {name: torch.zeros_like(p) for name, p in rollout.model.state_dict().items()}
    asyncio.run(rollout.update_weights(weights, global_steps=3))
    assert all(p.abs().sum() == 0 for p in rollout.model.parameters()) and rollout.global_steps == 3
    ones = {name: torch.ones_like(t) for name, t in weights.items()}
    first, last = list(weights)[0], list(weights)[-1]
    wrong = [({k: v for k, v in ones.items() if k != first}, [first], [], []),
             ({**ones, "extra.weight": torch.ones(1)}, [], ["extra.weight"], []),
             ({**ones, last: torch.ones(1)}, [], [], [last])]
    for state_dict, missing, unexpected, resized in wrong:
        message = f"weight sync mismatch: missing {missing}, unexpected {unexpected}, another shape {resized}"
        with pytest.raises(RuntimeError, match=re.escape(message)):
            asyncio.run(rollout.update_weights(state_dict))
        assert all(p.abs().sum() == 0 for p in rollout.model.parameters())  # nothing of it was loaded
    with pytest.raises(NotImplementedError, match="text-only"):
        asyncio.run(rollout.generate(PROMPTS[0], {}, request_id="0", image_data=[object()]))
