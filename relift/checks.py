"""Configuration checks that run before Ray starts: each catches a size relation that veRL or relift
would otherwise assert on later, after the workers are up (hours into a run for the first supervised
update), a key that would be silently ignored, or a checkpoint to resume from that veRL could not load (gone, no
actor shards, shards of another number of ranks) or that lacks ReLIFT's state.
No veRL, no Ray. Every problem is one line naming the keys, their values and a value that works.

veRL 0.9.1's run-time size rules on relift's paths (file:line under site-packages/verl), all checked here in
both batching modes unless said. D: a role's data-parallel size, GPUs / its Ulysses size; R: the responses of a
step, data.train_batch_size x rollout.n. veRL's own validate_config (relift.main runs it) checks only R % GPUs
and train_batch_size >= ppo_mini_batch_size, and only with use_dynamic_bsz=false.

- R % D: the dispatch of the old and reference log-probs and of the actor update (single_controller/base/
  decorator.py:77 -> utils/tensordict_utils.py:341) and trainer.balance_batch (trainer/ppo/ray_trainer.py:1235 ->
  utils/seqlen_balancing.py:147).
- R % rollout.agent.num_workers: the agent loop splits a step's prompts evenly (experimental/agent_loop/
  agent_loop.py:1247 -> protocol.py:871). Validation pads (ray_trainer.py:637), so does the reward loop
  (experimental/reward_loop/reward_loop.py:348).
- ppo_mini_batch_size x n % D (workers/engine_workers.py:267) and train_batch_size % ppo_mini_batch_size
  (utils/tensordict_utils.py:588); the supervised update (relift.workers.sft_update, one mini-batch of
  relift.sft_trigger_size): sft_trigger_size % D.
- use_dynamic_bsz=false: each rank's batch % micro_batch_size_per_gpu (workers/engine/utils.py:125) for the actor's
  mini-batch, the old and reference log-probs and the supervised update.
- use_dynamic_bsz=true: max_token_len_per_gpu x Ulysses size >= the longest sequence (utils/seqlen_balancing.py:384)
  for the actor (RL and supervised), the old and reference log-probs; rollout.log_prob_use_dynamic_bsz ==
  actor.use_dynamic_bsz (workers/engine_workers.py:616).
- Device meshes: the Ulysses size and fsdp_size divide the GPUs (workers/engine/fsdp/transformer_impl.py:247,
  workers/engine/fsdp/utils.py:50).
- Rollout replicas: tp x dp x pp divides the GPUs and fits the nodes (workers/engine_workers.py:659,
  workers/rollout/replica.py:114; vLLM data parallelism over nodes: n_gpus_per_node % tp,
  workers/rollout/vllm_rollout/vllm_async_server.py:385); expert_parallel_size = tp x dp
  (workers/config/rollout.py:295); no pipeline parallelism in vLLM/SGLang (workers/config/rollout.py:319).

Not here: Ulysses needs use_remove_padding (veRL's validate_config); attention heads % Ulysses size
(models/transformers/monkey_patch.py:343) needs the model's config; the forced micro-batch groups of
utils/seqlen_balancing.py:436,446 have size 1 on these paths. The SFT-only baseline's rules: relift.sft_baseline.
"""

from __future__ import annotations

import math
import os

from omegaconf import DictConfig, OmegaConf

from relift.checkpoints import STATE_FILE, resume_folder, resume_state_missing, saved_world_size
from relift.sft_plan import SupervisedSettings, replayed_counts

ACTOR, REF, ROLLOUT = "actor_rollout_ref.actor", "actor_rollout_ref.ref", "actor_rollout_ref.rollout"


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
    roles = {ACTOR: actor}
    if actor.use_kl_loss or config.algorithm.use_kl_in_reward:  # veRL's need_reference_policy
        roles[REF] = config.actor_rollout_ref.ref
    meshes = [problem for key, section in roles.items() for problem in _role_mesh_problems(key, section, world)]
    problems += meshes
    if not meshes:  # the data-parallel sizes are known
        dp = {key: world // ulysses_size(section) for key, section in roles.items()}
        problems += _step_problems(config, dp, world)
        if actor.use_dynamic_bsz:
            problems += _token_limit_problems(config, roles)
        else:
            problems += _rl_micro_batch_problems(config, dp, world)
        if config.relift.enable:
            supervised = _supervised_problems(config, dp[ACTOR], world)
            problems += supervised + _stabilizer_problems(config, batch_fits=not supervised)
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


def _divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, max(limit, 1) + 1) if n % d == 0)


def _dp_words(world: int, dp: int) -> str:
    sp = world // dp
    return "(trainer.n_gpus_per_node x trainer.nnodes" + (f" = {world} / Ulysses size {sp})" if sp > 1 else ")")


def ulysses_size(section: DictConfig) -> int:
    """A training role's Ulysses sequence-parallel size: the deprecated key of the role's section wins when
    above 1 (FSDPActorConfig.__post_init__, verl/workers/config/actor.py:328)."""
    legacy = section.get("ulysses_sequence_parallel_size", 1)
    return legacy if legacy > 1 else section.fsdp_config.ulysses_sequence_parallel_size


def mesh_problems(ulysses_key: str, ulysses: int, fsdp_key: str, fsdp_size: int, world: int) -> list[str]:
    """torch's device meshes that veRL's FSDP engine builds: (ranks / Ulysses size, Ulysses size)
    (verl/workers/engine/fsdp/transformer_impl.py:247) and, for 0 <= fsdp_size < ranks, (ranks / fsdp_size,
    fsdp_size) (verl/workers/engine/fsdp/utils.py:50). Also the SFT-only baseline's rule (relift.sft_baseline)."""
    problems = []
    if ulysses < 1 or world % ulysses:
        problems.append(f"{ulysses_key}={ulysses} must divide the {world} ranks: "
                        f"e.g. {ulysses_key}={_divisor_at_most(world, ulysses)}")
    if 0 <= fsdp_size < world and (fsdp_size == 0 or world % fsdp_size):
        problems.append(f"{fsdp_key}={fsdp_size} must divide the {world} ranks, or be -1 (all of them): "
                        f"e.g. {fsdp_key}=-1")
    return problems


def _role_mesh_problems(key: str, section: DictConfig, world: int) -> list[str]:
    legacy = section.get("ulysses_sequence_parallel_size", 1) > 1
    ulysses_key = f"{key}.ulysses_sequence_parallel_size" if legacy else \
        f"{key}.fsdp_config.ulysses_sequence_parallel_size"
    return mesh_problems(ulysses_key, ulysses_size(section), f"{key}.fsdp_config.fsdp_size",
                         section.fsdp_config.fsdp_size, world)


def _step_problems(config: DictConfig, dp: dict[str, int], world: int) -> list[str]:
    """The step's responses over the data-parallel ranks and the agent-loop workers, and its mini-batches."""
    arr, batch = config.actor_rollout_ref, config.data.train_batch_size
    n, mini, workers = arr.rollout.n, arr.actor.ppo_mini_batch_size, arr.rollout.agent.num_workers
    ranks, actor_dp = math.lcm(*dp.values()), dp[ACTOR]
    problems = []
    if batch * n % ranks:
        # batch sizes that are multiples of `step` split, and also fit the mini-batch when it can fit at all
        step = math.lcm(ranks // math.gcd(n, ranks), 1 if mini * n % actor_dp else mini)
        problems.append(
            f"data.train_batch_size={batch} x actor_rollout_ref.rollout.n={n} = {batch * n} responses per step must "
            f"split over the data-parallel size {ranks} {_dp_words(world, actor_dp)}: "
            f"e.g. data.train_batch_size={max(step, batch // step * step)}"
        )
    elif batch % mini or mini * n % actor_dp:
        fits = [m for m in range(1, batch + 1) if batch % m == 0 and m * n % actor_dp == 0]  # batch itself fits
        problems.append(
            f"{ACTOR}.ppo_mini_batch_size={mini} must divide data.train_batch_size={batch}, and its {mini} x "
            f"rollout.n {n} = {mini * n} responses must split over the data-parallel size {actor_dp}: "
            f"e.g. {ACTOR}.ppo_mini_batch_size={max((m for m in fits if m <= mini), default=min(fits))}"
        )
    if batch * n % workers:
        problems.append(
            f"{ROLLOUT}.agent.num_workers={workers} must divide the responses per step, data.train_batch_size x "
            f"rollout.n = {batch} x {n} = {batch * n} (the agent loop splits them evenly): "
            f"e.g. {ROLLOUT}.agent.num_workers={_divisor_at_most(batch * n, workers)}"
        )
    if arr.rollout.log_prob_use_dynamic_bsz != arr.actor.use_dynamic_bsz:
        actor_mode = str(arr.actor.use_dynamic_bsz).lower()
        problems.append(
            f"{ROLLOUT}.log_prob_use_dynamic_bsz={str(arr.rollout.log_prob_use_dynamic_bsz).lower()} must equal "
            f"{ACTOR}.use_dynamic_bsz={actor_mode} (veRL's actor asserts it when it starts): "
            f"set {ROLLOUT}.log_prob_use_dynamic_bsz={actor_mode}"
        )
    return problems


def _rl_micro_batch_problems(config: DictConfig, dp: dict[str, int], world: int) -> list[str]:
    # Fixed micro-batches must divide each rank's share exactly (verl/workers/engine/utils.py,
    # prepare_micro_batches).
    arr = config.actor_rollout_ref
    n, batch = arr.rollout.n, config.data.train_batch_size
    shares = [
        (f"{ACTOR}.ppo_micro_batch_size_per_gpu", arr.actor.ppo_micro_batch_size_per_gpu,
         f"{ACTOR}.ppo_mini_batch_size x rollout.n", arr.actor.ppo_mini_batch_size * n, dp[ACTOR]),
        (f"{ROLLOUT}.log_prob_micro_batch_size_per_gpu", arr.rollout.log_prob_micro_batch_size_per_gpu,
         "data.train_batch_size x rollout.n", batch * n, dp[ACTOR]),
    ]
    if REF in dp:
        shares.append((f"{REF}.log_prob_micro_batch_size_per_gpu", arr.ref.log_prob_micro_batch_size_per_gpu,
                       "data.train_batch_size x rollout.n", batch * n, dp[REF]))
    problems = []
    for key, micro, what, total, ranks in shares:
        if total % ranks:  # _step_problems said it
            continue
        if micro is None or (total // ranks) % micro:
            per = "GPUs" if ranks == world else "data-parallel ranks"
            problems.append(
                f"{key}={micro} must divide the responses per GPU, {what} / {per} = {total} / {ranks} = "
                f"{total // ranks} (use_dynamic_bsz=false): e.g. {key}={math.gcd(total // ranks, micro or total)}"
            )
    return problems


def _token_limit_problems(config: DictConfig, roles: dict[str, DictConfig]) -> list[str]:
    """Dynamic batching packs micro-batches up to max_token_len_per_gpu x Ulysses size tokens and refuses a
    longer sequence (verl/utils/seqlen_balancing.py:384). A log-prob limit that interpolates another key
    (veRL's default: the actor's) is left to that key's line."""
    data, relift = config.data, config.relift
    longest_rl = ("the longest RL sequence, data.max_prompt_length + data.max_response_length",
                  data.max_prompt_length + data.max_response_length)
    longest_actor = longest_rl
    if relift.enable and data.max_prompt_length + relift.max_target_len >= longest_rl[1]:
        longest_actor = ("the longest supervised sequence, data.max_prompt_length + relift.max_target_len",
                         data.max_prompt_length + relift.max_target_len)
    limits = [(ACTOR, "ppo_max_token_len_per_gpu", longest_actor, roles[ACTOR]),
              (ROLLOUT, "log_prob_max_token_len_per_gpu", longest_rl, roles[ACTOR])]
    if REF in roles:
        limits.append((REF, "log_prob_max_token_len_per_gpu", longest_rl, roles[REF]))
    problems = []
    for section, name, (what, longest), role in limits:
        node = OmegaConf.select(config, section)
        limit, sp = node[name], ulysses_size(role)
        if OmegaConf.is_interpolation(node, name) or (limit or 0) * sp >= longest:
            continue
        times = f" (x Ulysses size {sp})" if sp > 1 else ""
        problems.append(f"{section}.{name}={limit}{times} is below {what} = {longest}: "
                        f"set it to at least {-(-longest // sp)}")
    return problems


def _rollout_problems(rollout: DictConfig, gpus_per_node: int, world: int) -> list[str]:
    # veRL makes world // (tp x dp x pp) rollout replicas: a remainder leaves GPUs idle, and a replica
    # spanning nodes must take whole nodes (verl/workers/rollout/replica.py).
    tp, dp, pp = (rollout.tensor_model_parallel_size, rollout.data_parallel_size,
                  rollout.pipeline_model_parallel_size)

    def whole(tp: int) -> bool:
        replica = tp * dp * pp
        fits = replica <= gpus_per_node and gpus_per_node % replica == 0 or replica % gpus_per_node == 0
        return world % replica == 0 and fits

    def engines(tp: int) -> bool:
        # vLLM's data-parallel engines of a replica over nodes take tp GPUs each, node by node.
        return rollout.name != "vllm" or dp == 1 or tp * dp * pp <= gpus_per_node or gpus_per_node % tp == 0

    works = max((t for t in range(1, tp + 1) if whole(t) and engines(t)), default=1)
    problems = []
    if not whole(tp):
        problems.append(
            f"{ROLLOUT}.tensor_model_parallel_size={tp} (x data {dp} x pipeline {pp} = {tp * dp * pp} GPUs per "
            f"rollout replica) must divide trainer.n_gpus_per_node={gpus_per_node} (or be a multiple of it that "
            f"divides the {world} GPUs): e.g. {ROLLOUT}.tensor_model_parallel_size={works}"
        )
    elif not engines(tp):
        problems.append(
            f"{ROLLOUT}.tensor_model_parallel_size={tp} must divide trainer.n_gpus_per_node={gpus_per_node} when "
            f"{ROLLOUT}.data_parallel_size={dp} spans nodes: e.g. {ROLLOUT}.tensor_model_parallel_size={works}"
        )
    if rollout.name != "trtllm" and rollout.expert_parallel_size > 1 and rollout.expert_parallel_size != tp * dp:
        problems.append(
            f"{ROLLOUT}.expert_parallel_size={rollout.expert_parallel_size} must equal tensor_model_parallel_size x "
            f"data_parallel_size = {tp} x {dp}: e.g. {ROLLOUT}.expert_parallel_size={tp * dp}"
        )
    if pp > 1 and rollout.name in ("vllm", "sglang", "trtllm"):
        problems.append(f"{ROLLOUT}.pipeline_model_parallel_size={pp}: veRL 0.9.1's {rollout.name} rollout has no "
                        f"pipeline parallelism; set {ROLLOUT}.pipeline_model_parallel_size=1")
    return problems


def _supervised_problems(config: DictConfig, dp: int, world: int) -> list[str]:
    relift, actor = config.relift, config.actor_rollout_ref.actor
    m, micro = relift.sft_trigger_size, relift.sft_micro_batch_size_per_gpu
    if m % dp:
        return [
            f"relift.sft_trigger_size={m} must be a multiple of the data-parallel size {dp} "
            f"{_dp_words(world, dp)}: e.g. relift.sft_trigger_size={max(dp, m // dp * dp)}"
        ]
    if actor.use_dynamic_bsz:
        if micro is not None:
            return [
                f"relift.sft_micro_batch_size_per_gpu={micro} would be ignored: with "
                "actor_rollout_ref.actor.use_dynamic_bsz=true micro-batches are cut by tokens "
                f"(actor_rollout_ref.actor.ppo_max_token_len_per_gpu={actor.ppo_max_token_len_per_gpu}); "
                "set relift.sft_micro_batch_size_per_gpu=null, or use_dynamic_bsz=false"
            ]
        return []
    # Any size splits: relift.sft_plan.micro_batching falls back to the largest divisor of each rank's batch.
    if micro is not None and micro < 1:
        return [f"relift.sft_micro_batch_size_per_gpu={micro} must be at least 1 (or null: the actor's "
                f"{ACTOR}.ppo_micro_batch_size_per_gpu)"]
    return []


def resume_problems(config: DictConfig) -> list[str]:
    """What the checkpoint veRL would resume from (veRL's tracker file names the folder) cannot give this run:
    no such folder, no actor shards, shards written by another number of ranks, or no ReLIFT state."""
    trainer = config.trainer
    if trainer.resume_mode == "resume_path" and "global_step_" not in str(trainer.resume_from_path or ""):
        return [f"trainer.resume_mode=resume_path needs trainer.resume_from_path=<run>/global_step_<N> (veRL's "
                f"assertion), not {trainer.resume_from_path}"]
    folder = resume_folder(config)
    if folder is None:
        return []
    if not os.path.isdir(folder):
        return [f"{folder} does not exist (trainer.resume_mode={trainer.resume_mode}): give a global_step_<N> "
                "folder a run saved, or trainer.resume_mode=disable to start afresh"]
    saved, ranks = saved_world_size(folder), trainer.n_gpus_per_node * trainer.nnodes
    if saved is None and config.actor_rollout_ref.actor.strategy in ("fsdp", "fsdp2"):
        return [f"{folder} holds no veRL FSDP actor checkpoint (no actor/fsdp_config.json): give a "
                "global_step_<N> folder a run saved, or trainer.resume_mode=disable to start afresh"]
    problems = []
    if saved is not None and saved != ranks:
        problems.append(
            f"{folder}/actor holds the shards of {saved} ranks and this run has {ranks} (trainer.n_gpus_per_node="
            f"{trainer.n_gpus_per_node} x trainer.nnodes={trainer.nnodes}), and veRL loads only its own number's: "
            f"resume on {saved} GPUs, or merge the checkpoint (python -m verl.model_merger merge --backend fsdp "
            f"--local_dir {folder}/actor --target_dir OUT) and start a new run from it "
            "(actor_rollout_ref.model.path=OUT, another trainer.default_local_dir; its steps, schedules, "
            "optimizers and ReLIFT's buffer start afresh)"
        )
    path = os.path.join(folder, STATE_FILE)
    if config.relift.enable and not config.relift.resume_without_state and not os.path.exists(path):
        problems.append(resume_state_missing(path))
    return problems


def supervised_settings(config: DictConfig) -> SupervisedSettings:
    """The configuration's keys that ReLIFT's supervised updates follow (relift.sft_plan)."""
    relift, actor = config.relift, config.actor_rollout_ref.actor
    ranks = config.trainer.n_gpus_per_node * config.trainer.nnodes // ulysses_size(actor)
    largest = relift.sft_micro_batch_size_per_gpu or actor.ppo_micro_batch_size_per_gpu
    own, taught = replayed_counts(relift.sft_trigger_size, relift.replay.share, relift.replay.taught_share, ranks)
    return SupervisedSettings(
        new=relift.sft_trigger_size, max_updates_per_step=relift.max_sft_updates_per_step, ranks=ranks,
        largest_micro_batch=None if actor.use_dynamic_bsz else largest, own=own, taught=taught,
        taught_warmup_updates=relift.replay.taught_warmup_updates, lr=relift.optim.lr,
        warmup_updates=relift.optim.warmup_updates, anchor_weight=relift.replay.anchor_weight,
        anchor_decay_updates=relift.replay.anchor_decay_updates, max_target_len=relift.max_target_len,
        correct_threshold=relift.correct_threshold, seed=config.data.seed,
    )


def _replay_problems(config: DictConfig, batch_fits: bool) -> list[str]:
    relift, settings = config.relift, supervised_settings(config)
    replay = relift.replay
    if min(replay.share, replay.taught_share) < 0 or replay.share + replay.taught_share >= 1:
        return [f"relift.replay.share={replay.share} and relift.replay.taught_share={replay.taught_share} must "
                "be >= 0 and leave room for new demonstrations (sum < 1): e.g. 0.5 and 0.25"]
    problems = []
    for key, count in (("share", settings.own), ("taught_share", settings.taught)):
        # The replay unit is the data-parallel size: while that one is refused, its fix comes first.
        if batch_fits and replay[key] > 0 and not count:
            problems.append(
                f"relift.replay.{key}={replay[key]} replays no response: its share of a batch of "
                f"relift.sft_trigger_size={relift.sft_trigger_size} new demonstrations is below "
                f"{settings.ranks} (one per data-parallel rank); raise it"
            )
    if (settings.own or settings.taught) and not (replay.pool_size or 0) > 0:
        problems.append(f"relift.replay.pool_size={replay.pool_size} must be positive: e.g. 256")
    return problems


def _stabilizer_problems(config: DictConfig, batch_fits: bool) -> list[str]:
    from relift.sft import TOKEN_WEIGHTINGS

    relift = config.relift
    problems = _replay_problems(config, batch_fits)
    if relift.sft_loss.weighting not in TOKEN_WEIGHTINGS:
        problems.append(f"relift.sft_loss.weighting={relift.sft_loss.weighting} is not one of "
                        f"{', '.join(TOKEN_WEIGHTINGS)}")
    if not 0 < relift.sft_loss.trust_region_alpha <= 1:
        problems.append(f"relift.sft_loss.trust_region_alpha={relift.sft_loss.trust_region_alpha} must be in (0, 1]: "
                        "e.g. 0.1")
    for key, count in (("replay.taught_warmup_updates", relift.replay.taught_warmup_updates),
                       ("optim.warmup_updates", relift.optim.warmup_updates),
                       ("replay.anchor_decay_updates", relift.replay.anchor_decay_updates)):
        if count < 0:
            problems.append(f"relift.{key}={count} must be >= 0 (0: none)")
    if not relift.replay.anchor_weight >= 1:
        problems.append(f"relift.replay.anchor_weight={relift.replay.anchor_weight} must be >= 1: e.g. 1 (own "
                        "responses weigh as much as a demonstration) or 16")
    if relift.guard.window < 1:
        problems.append(f"relift.guard.window={relift.guard.window} must be >= 1 step: e.g. 5")
    if relift.guard.max_rise is not None and not 0 <= relift.guard.max_rise <= 1:
        problems.append(f"relift.guard.max_rise={relift.guard.max_rise} must be in [0, 1] or null (guard off): "
                        "e.g. 0.2")
    return problems
