"""Configuration checks that run before Ray starts: each catches a size relation that veRL or relift
would otherwise assert on later, after the workers are up (hours into a run for the first supervised
update), a key that would be silently ignored, or a checkpoint to resume from that lacks ReLIFT's state.
No veRL, no Ray. Every problem is one
line naming the keys, their values and a value that works.
"""

from __future__ import annotations

import math
import os

from omegaconf import DictConfig

from relift.checkpoints import STATE_FILE, resume_folder, resume_state_missing


def config_problems(config: DictConfig) -> list[str]:
    problems = []
    trainer, actor = config.trainer, config.actor_rollout_ref.actor
    if trainer.get("use_v1", False):
        problems.append(
            "trainer.use_v1=true: relift subclasses veRL's v0 RayPPOTrainer and would run it anyway; "
            "set trainer.use_v1=false"
        )
    world = trainer.n_gpus_per_node * trainer.nnodes
    problems += _rollout_problems(config.actor_rollout_ref.rollout, trainer.n_gpus_per_node, world)
    if trainer.device == "cpu" and actor.strategy != "fsdp2":
        # torch's FSDP1 refuses CPU-resident weights with sync_module_states=True, which veRL always passes
        # (verl/workers/engine/fsdp/transformer_impl.py, _build_fsdp_module).
        problems.append(
            f"actor_rollout_ref.actor.strategy={actor.strategy} cannot run with trainer.device=cpu "
            "(torch's FSDP1 needs an accelerator): set actor_rollout_ref.actor.strategy=fsdp2"
        )
    if not actor.use_dynamic_bsz:
        problems += _rl_micro_batch_problems(config, world)
    if config.relift.enable:
        problems += _supervised_problems(config, world)
    if config.relift.teacher.enable:
        problems += _teacher_problems(config)
    return problems


def _teacher_problems(config: DictConfig) -> list[str]:
    from relift.teacher import config_from

    if not config.relift.enable:
        return ["relift.teacher.enable=true with relift.enable=false: the teacher's demonstrations feed the "
                "supervised updates; set relift.enable=true or relift.teacher.enable=false"]
    try:
        teacher = config_from(config.relift.teacher)
    except TypeError as error:
        return [f"relift.teacher: {error}"]
    return [f"relift.teacher.{problem}" for problem in teacher.problems()]


def _rl_micro_batch_problems(config: DictConfig, world: int) -> list[str]:
    # Fixed micro-batches must divide each rank's share exactly (verl/workers/engine/utils.py,
    # prepare_micro_batches); found on two CPU ranks, where the CPU overlay's 32 exceeded the 16 per rank.
    arr = config.actor_rollout_ref
    n, batch = arr.rollout.n, config.data.train_batch_size
    shares = [
        ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", arr.actor.ppo_micro_batch_size_per_gpu,
         "actor_rollout_ref.actor.ppo_mini_batch_size x rollout.n", arr.actor.ppo_mini_batch_size * n),
        ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", arr.rollout.log_prob_micro_batch_size_per_gpu,
         "data.train_batch_size x rollout.n", batch * n),
    ]
    if arr.actor.use_kl_loss or config.algorithm.use_kl_in_reward:
        shares.append(("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu",
                       arr.ref.log_prob_micro_batch_size_per_gpu, "data.train_batch_size x rollout.n", batch * n))
    problems = []
    for key, micro, what, total in shares:
        if micro is None or total % world or (total // world) % micro:
            problems.append(
                f"{key}={micro} must divide the responses per GPU, {what} / GPUs = {total} / {world} = "
                f"{total / world:g} (use_dynamic_bsz=false): e.g. {key}={math.gcd(total // world, micro or total)}"
            )
    return problems


def _rollout_problems(rollout: DictConfig, gpus_per_node: int, world: int) -> list[str]:
    # veRL makes world // (tp x dp x pp) rollout replicas: a remainder leaves GPUs idle, and a replica
    # spanning nodes must take whole nodes (verl/workers/rollout/replica.py).
    replica = rollout.tensor_model_parallel_size * rollout.data_parallel_size * rollout.pipeline_model_parallel_size
    fits = replica <= gpus_per_node and gpus_per_node % replica == 0 or replica % gpus_per_node == 0
    if world % replica == 0 and fits:
        return []
    tp = max(d for d in range(1, rollout.tensor_model_parallel_size + 1) if gpus_per_node % d == 0)
    return [
        f"actor_rollout_ref.rollout.tensor_model_parallel_size={rollout.tensor_model_parallel_size} (x data "
        f"{rollout.data_parallel_size} x pipeline {rollout.pipeline_model_parallel_size} = {replica} GPUs per rollout "
        f"replica) must divide trainer.n_gpus_per_node={gpus_per_node} (or be a multiple of it that divides the "
        f"{world} GPUs): e.g. actor_rollout_ref.rollout.tensor_model_parallel_size={tp}"
    ]


def _supervised_problems(config: DictConfig, dp: int) -> list[str]:
    relift, actor = config.relift, config.actor_rollout_ref.actor
    m, micro = relift.sft_trigger_size, relift.sft_micro_batch_size_per_gpu
    if m % dp:
        return [
            f"relift.sft_trigger_size={m} must be a multiple of the data-parallel size {dp} "
            f"(trainer.n_gpus_per_node x trainer.nnodes): e.g. relift.sft_trigger_size={max(dp, m // dp * dp)}"
        ]
    if actor.use_dynamic_bsz:
        if micro is not None:
            return [
                f"relift.sft_micro_batch_size_per_gpu={micro} would be ignored: with "
                "actor_rollout_ref.actor.use_dynamic_bsz=true micro-batches are cut by tokens "
                f"(actor_rollout_ref.actor.ppo_max_token_len_per_gpu={actor.ppo_max_token_len_per_gpu}); "
                "set relift.sft_micro_batch_size_per_gpu=null, or use_dynamic_bsz=false"
            ]
        longest = config.data.max_prompt_length + relift.max_target_len
        if actor.ppo_max_token_len_per_gpu < longest:
            return [
                f"actor_rollout_ref.actor.ppo_max_token_len_per_gpu={actor.ppo_max_token_len_per_gpu} is below "
                f"the longest supervised sequence, data.max_prompt_length + relift.max_target_len = {longest}: "
                f"set it to at least {longest}"
            ]
        return []
    key = "relift.sft_micro_batch_size_per_gpu"
    if micro is None:
        key, micro = "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu (relift.sft_micro_batch_size_per_gpu=null)", actor.ppo_micro_batch_size_per_gpu
    if micro is None or (m // dp) % micro:
        return [
            f"{key}={micro} must divide the supervised batch per GPU, relift.sft_trigger_size / data-parallel size "
            f"= {m} / {dp} = {m // dp} (actor_rollout_ref.actor.use_dynamic_bsz=false): "
            f"e.g. relift.sft_micro_batch_size_per_gpu={m // dp}"
        ]
    return []


def resume_problem(config: DictConfig) -> str | None:
    """The checkpoint veRL would resume from lacks ReLIFT's state (veRL's tracker file names the folder)."""
    folder = resume_folder(config)
    if not config.relift.enable or config.relift.resume_without_state or folder is None:
        return None
    path = os.path.join(folder, STATE_FILE)
    return None if os.path.exists(path) else resume_state_missing(path)
