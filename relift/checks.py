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

STATE_FILE = "relift_state.json"


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
        problems += _supervised_problems(config, world) + _stabilizer_problems(config)
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


def resume_state_missing(path: str) -> str:
    return (
        f"{path} is missing: this checkpoint has no ReLIFT buffer (written by a run with "
        "relift.enable=false, or killed mid-save by a relift older than the state-first save); set "
        "relift.resume_without_state=true to resume from it with an empty buffer, or "
        "trainer.resume_mode=disable to start afresh"
    )


def latest_step(checkpoint_dir: str) -> int | None:
    """The step of the checkpoint veRL marked as the latest (its tracker file), None before the first."""
    tracker = os.path.join(checkpoint_dir, "latest_checkpointed_iteration.txt")
    if not os.path.exists(tracker):
        return None
    with open(tracker) as f:
        return int(f.read())


def resume_problem(config: DictConfig) -> str | None:
    """The checkpoint veRL would resume from lacks ReLIFT's state (veRL's tracker file names the folder)."""
    trainer = config.trainer
    if not config.relift.enable or config.relift.resume_without_state or trainer.resume_mode == "disable":
        return None
    if trainer.resume_mode == "resume_path":
        folder = trainer.resume_from_path
    else:
        step = latest_step(trainer.default_local_dir)
        if step is None:
            return None
        folder = os.path.join(trainer.default_local_dir, f"global_step_{step}")
    path = os.path.join(folder, STATE_FILE)
    return None if os.path.exists(path) else resume_state_missing(path)


def replay_granularity(config: DictConfig) -> int:
    """What the number of replayed responses in a supervised batch must be a multiple of, for the batch to
    split over the data-parallel ranks and, without dynamic batch sizes, into whole micro-batches."""
    actor, dp = config.actor_rollout_ref.actor, config.trainer.n_gpus_per_node * config.trainer.nnodes
    if actor.use_dynamic_bsz:
        return dp
    return dp * (config.relift.sft_micro_batch_size_per_gpu or actor.ppo_micro_batch_size_per_gpu)


def replayed_per_update(config: DictConfig) -> int:
    """Correct responses of the policy's own added to each supervised update: relift.replay.share of the
    batch of sft_trigger_size demonstrations plus them, rounded down to `replay_granularity`."""
    relift, unit = config.relift, replay_granularity(config)
    share = relift.replay.share
    return int(relift.sft_trigger_size * share / (1 - share)) // unit * unit if 0 < share < 1 else 0


def _stabilizer_problems(config: DictConfig) -> list[str]:
    from relift.sft import TOKEN_WEIGHTINGS

    relift = config.relift
    problems = []
    if not 0 <= relift.replay.share < 1:
        problems.append(f"relift.replay.share={relift.replay.share} must be in [0, 1): e.g. relift.replay.share=0.5")
    elif relift.replay.share > 0 and not replayed_per_update(config):
        problems.append(
            f"relift.replay.share={relift.replay.share} replays no response: relift.sft_trigger_size="
            f"{relift.sft_trigger_size} x share / (1 - share) is below {replay_granularity(config)} (one micro-batch "
            "per data-parallel rank); raise relift.replay.share"
        )
    if relift.replay.share > 0 and not (relift.replay.pool_size or 0) > 0:
        problems.append(f"relift.replay.pool_size={relift.replay.pool_size} must be positive: e.g. 256")
    if relift.sft_loss.weighting not in TOKEN_WEIGHTINGS:
        problems.append(f"relift.sft_loss.weighting={relift.sft_loss.weighting} is not one of {', '.join(TOKEN_WEIGHTINGS)}")
    if not 0 < relift.sft_loss.trust_region_alpha <= 1:
        problems.append(f"relift.sft_loss.trust_region_alpha={relift.sft_loss.trust_region_alpha} must be in (0, 1]: e.g. 0.1")
    if relift.optim.warmup_updates < 0:
        problems.append(f"relift.optim.warmup_updates={relift.optim.warmup_updates} must be >= 0 (0: no warm-up)")
    if relift.guard.window < 1:
        problems.append(f"relift.guard.window={relift.guard.window} must be >= 1 step: e.g. 5")
    if relift.guard.max_rise is not None and not 0 <= relift.guard.max_rise <= 1:
        problems.append(f"relift.guard.max_rise={relift.guard.max_rise} must be in [0, 1] or null (guard off): e.g. 0.2")
    return problems
