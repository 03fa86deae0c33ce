"""An `hf` rollout backend for veRL 0.9.1: transformers models decoding on CPU, with log-probs.

`device=cpu` rolls out with veRL's vLLM server on vLLM's CPU build (relift.verl_ext.vllm_rollout); this
backend, `actor_rollout_ref.rollout.name=hf`, starts about 30 s sooner on 2 cores, for short CPU runs
and the tests whose subject is not the rollout. It plugs into the same two registries veRL's server
rollouts use, so veRL's agent loop, load balancer and weight-sync path run unchanged:

- `HFRolloutServer`: one Ray actor per replica. It collects concurrent `generate` requests for a few
  milliseconds, decodes them together (KV-cached, left-padded batch) and answers each with a
  `TokenOutput` (token ids + log-probs of the sampled tokens at the sampling temperature).
- `HFReplica`: the `RolloutReplica` that launches that server (registered as "hf").
- `HFServerAdapter`: the in-worker rollout (`BaseRollout`, registered as ("hf", "async")). On each
  weight sync it receives the actor's full parameters and hands them to its replica's server.

Sampling is reproducible: every request gets its own torch.Generator seeded from the rollout seed,
the prompt and how many times that prompt was asked since the last weight sync, so results do not
depend on how requests happened to be batched.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

import ray
import torch
from verl.workers.rollout import base as rollout_base
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, RolloutReplicaRegistry, TokenOutput

from relift.padding import pad

logger = logging.getLogger(__name__)

BATCH_WINDOW_S = 0.02


@dataclass
class _Request:
    prompt_ids: list[int]
    max_tokens: int
    generator: torch.Generator
    done: asyncio.Future = field(repr=False)


def _filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """logits: (B, V) already divided by the temperature; masks what top-k / top-p exclude with -inf."""
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative - torch.softmax(sorted_logits, dim=-1) > top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


class HFRolloutServer:
    """Token-in/token-out generation server backed by a transformers causal LM."""

    def __init__(self, config, model_config, replica_rank: int):
        from transformers import AutoModelForCausalLM
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import HFModelConfig

        torch.set_num_threads(os.cpu_count() or 1)
        config = omega_conf_to_dataclass(config)
        model_config = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.config = config
        self.replica_rank = replica_rank
        self.model = AutoModelForCausalLM.from_pretrained(model_config.local_path, dtype=torch.float32)
        self.model.eval()
        generation_config = self.model.generation_config
        eos = generation_config.eos_token_id if generation_config.eos_token_id is not None else []
        self.eos_token_ids = set(eos if isinstance(eos, list) else [eos])
        self.eos_token_ids.add(model_config.tokenizer.eos_token_id)
        pad = model_config.tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else model_config.tokenizer.eos_token_id
        self.seed = config.seed
        self.global_steps = None
        self._asked = Counter()
        self._pending: list[tuple[dict, _Request]] = []
        self._batcher: Optional[asyncio.Task] = None

    def _request_generator(self, prompt_ids: list[int]) -> torch.Generator:
        digest = hashlib.sha256(repr((self.seed, self.global_steps, prompt_ids)).encode()).digest()
        key = digest.hex()
        self._asked[key] += 1
        seed = int.from_bytes(digest[:8], "little") ^ self._asked[key]
        return torch.Generator().manual_seed(seed & 0x7FFF_FFFF_FFFF_FFFF)

    def _max_tokens(self, prompt_ids: list[int], sampling_params: dict) -> int:
        budget = self.config.prompt_length + self.config.response_length - len(prompt_ids)
        default = sampling_params.pop("max_new_tokens", self.config.response_length)
        requested = sampling_params.pop("max_tokens", default)
        return max(1, min(requested, self.config.response_length, budget))

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data=None,
        video_data=None,
        audio_data=None,
        mm_processor_kwargs=None,
        priority: int = 0,
    ) -> TokenOutput:
        if image_data or video_data or audio_data:
            raise NotImplementedError("the hf rollout serves text-only models")
        prompt_ids = [int(t) for t in prompt_ids]
        params = dict(sampling_params)
        request = _Request(
            prompt_ids=prompt_ids,
            max_tokens=self._max_tokens(prompt_ids, params),
            generator=self._request_generator(prompt_ids),
            done=asyncio.get_running_loop().create_future(),
        )
        self._pending.append((params, request))
        if self._batcher is None or self._batcher.done():
            self._batcher = asyncio.create_task(self._run_batches())
        token_ids, log_probs = await request.done
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    async def _run_batches(self) -> None:
        await asyncio.sleep(BATCH_WINDOW_S)
        while self._pending:
            pending, self._pending = self._pending, []
            groups: dict[tuple, list[_Request]] = {}
            for params, request in pending:
                key = (float(params.get("temperature", 1.0)), float(params.get("top_p", 1.0)),
                       int(params.get("top_k", -1)))
                groups.setdefault(key, []).append(request)
            for (temperature, top_p, top_k), requests in groups.items():
                try:
                    results = await asyncio.to_thread(self._decode, requests, temperature, top_p, top_k)
                except Exception as error:  # answer every waiter, never leave one hanging
                    for request in requests:
                        request.done.set_exception(error)
                    continue
                for request, result in zip(requests, results, strict=True):
                    request.done.set_result(result)

    @torch.no_grad()
    def _decode(self, requests: list[_Request], temperature: float, top_p: float, top_k: int):
        """Decode a batch. Returns per request (token ids, log-probs at `temperature`)."""
        batch_size = len(requests)
        input_ids, attention_mask = pad([r.prompt_ids for r in requests], self.pad_token_id, side="left")
        max_new = max(r.max_tokens for r in requests)
        tokens: list[list[int]] = [[] for _ in requests]
        log_probs: list[list[float]] = [[] for _ in requests]
        finished = [False] * batch_size
        past = None
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        step_input = input_ids
        for _ in range(max_new):
            out = self.model(
                input_ids=step_input,
                attention_mask=attention_mask,
                position_ids=position_ids[:, -step_input.shape[1] :],
                past_key_values=past,
                use_cache=True,
            )
            past = out.past_key_values
            logits = out.logits[:, -1, :].float()
            scaled = logits / temperature if temperature > 0 else logits
            step_log_probs = torch.log_softmax(scaled, dim=-1)
            filtered = _filter_logits(scaled, top_k, top_p)
            next_tokens = torch.empty(batch_size, dtype=torch.long)
            for i, r in enumerate(requests):
                if temperature > 0:
                    probs = torch.softmax(filtered[i], dim=-1)
                    next_tokens[i] = torch.multinomial(probs, 1, generator=r.generator)[0]
                else:
                    next_tokens[i] = torch.argmax(filtered[i])
            for i, r in enumerate(requests):
                if finished[i]:
                    next_tokens[i] = self.pad_token_id
                    continue
                token = int(next_tokens[i])
                tokens[i].append(token)
                log_probs[i].append(float(step_log_probs[i, token]))
                if token in self.eos_token_ids or len(tokens[i]) >= r.max_tokens:
                    finished[i] = True
            if all(finished):
                break
            step_input = next_tokens.unsqueeze(-1)
            attention_mask = torch.cat([attention_mask, torch.ones((batch_size, 1), dtype=torch.long)], dim=-1)
            position_ids = torch.cat([position_ids, position_ids[:, -1:] + 1], dim=-1)
        return list(zip(tokens, log_probs, strict=True))

    async def update_weights(self, state_dict: dict[str, torch.Tensor], global_steps: Optional[int] = None) -> None:
        # Checked before loading: load_state_dict loads every matching tensor before it reports a mismatch.
        shapes = {name: tensor.shape for name, tensor in self.model.state_dict().items()}
        tied = {"lm_head.weight"} if self.model.config.tie_word_embeddings else set()
        missing, unexpected = sorted(set(shapes) - set(state_dict) - tied), sorted(set(state_dict) - set(shapes))
        resized = sorted(n for n, t in state_dict.items() if n in shapes and t.shape != shapes[n])
        if missing or unexpected or resized:
            raise RuntimeError(f"weight sync mismatch: missing {missing}, unexpected {unexpected}, "
                               f"another shape {resized}")
        self.model.load_state_dict(state_dict, strict=False)
        self.global_steps = global_steps
        self._asked.clear()

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    # Lifecycle calls veRL makes on every server; a CPU model holds no device memory to release.
    async def wake_up(self, tags=None):
        return None

    async def sleep(self):
        return None

    async def clear_kv_cache(self):
        return None

    async def release_kv_cache(self):
        return None

    async def resume_kv_cache(self):
        return None

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False):
        return {}

    async def resume_generation(self):
        return None

    async def start_profile(self, **kwargs):
        return None

    async def stop_profile(self):
        return None


def _server_name(replica_rank: int) -> str:
    return f"relift_hf_rollout_server_{replica_rank}"


class HFReplica(RolloutReplica):
    async def launch_servers(self):
        if self.world_size != 1:
            raise ValueError("the hf rollout runs one process per replica: "
                             "set rollout tensor/data/pipeline parallel sizes to 1")
        server = (
            ray.remote(HFRolloutServer)
            .options(name=_server_name(self.replica_rank), num_cpus=0, max_concurrency=self.max_concurrency)
            .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        )
        self.servers = [server]
        self._server_handle = server
        self._server_address = _server_name(self.replica_rank)


class HFServerAdapter(BaseRollout):
    """The rollout object inside each actor worker: forwards weight syncs to its replica's server."""

    def __init__(self, config, model_config, device_mesh, *args, **kwargs):
        super().__init__(config, model_config, device_mesh)
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        self.replica_rank = rank // self.config.tensor_model_parallel_size
        self.is_leader_rank = rank % self.config.tensor_model_parallel_size == 0

    async def resume(self, tags: list[str]):
        return None

    async def release(self):
        return None

    async def update_weights(self, weights, wire_format: str = "named_tensors", global_steps=None, **kwargs):
        if wire_format != "named_tensors":
            raise NotImplementedError(f"the hf rollout receives full named tensors, not {wire_format!r}")
        # Every rank drains the generator: producing full tensors may involve collectives.
        state_dict = {name: tensor.detach().to("cpu", copy=True) for name, tensor in weights}
        if self.is_leader_rank:
            server = ray.get_actor(_server_name(self.replica_rank))
            await server.update_weights.remote(state_dict, global_steps)


def register() -> None:
    rollout_base._ROLLOUT_REGISTRY[("hf", "async")] = f"{__name__}.HFServerAdapter"
    RolloutReplicaRegistry.register("hf", lambda: HFReplica)
