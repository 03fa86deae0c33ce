"""Configuration checks that run before Ray starts: each catches a size relation that veRL or relift
would otherwise assert on later, after the workers are up (hours into a run for the first supervised
update). Pure omegaconf: no veRL, no Ray. Every problem is one line naming the keys, their values and
a value that works.
"""

from __future__ import annotations

from omegaconf import DictConfig


def config_problems(config: DictConfig) -> list[str]:
    problems = []
    if config.trainer.get("use_v1", False):
        problems.append(
            "trainer.use_v1=true: relift subclasses veRL's v0 RayPPOTrainer and would run it anyway; "
            "set trainer.use_v1=false"
        )
    relift, actor = config.relift, config.actor_rollout_ref.actor
    if not relift.enable:
        return problems
    dp = config.trainer.n_gpus_per_node * config.trainer.nnodes
    m = relift.sft_trigger_size
    if m % dp:
        problems.append(
            f"relift.sft_trigger_size={m} must be a multiple of the data-parallel size {dp} "
            f"(trainer.n_gpus_per_node x trainer.nnodes): e.g. relift.sft_trigger_size={max(dp, m // dp * dp)}"
        )
    elif not actor.use_dynamic_bsz and (m // dp) % relift.sft_micro_batch_size_per_gpu:
        problems.append(
            f"relift.sft_micro_batch_size_per_gpu={relift.sft_micro_batch_size_per_gpu} must divide the "
            f"supervised batch per GPU, relift.sft_trigger_size / data-parallel size = {m} / {dp} = {m // dp} "
            f"(actor_rollout_ref.actor.use_dynamic_bsz=false): e.g. relift.sft_micro_batch_size_per_gpu={m // dp}"
        )
    if actor.use_dynamic_bsz:
        longest = config.data.max_prompt_length + relift.max_target_len
        if actor.ppo_max_token_len_per_gpu < longest:
            problems.append(
                f"actor_rollout_ref.actor.ppo_max_token_len_per_gpu={actor.ppo_max_token_len_per_gpu} is below "
                f"the longest supervised sequence, data.max_prompt_length + relift.max_target_len = {longest}: "
                f"set it to at least {longest}"
            )
    return problems
