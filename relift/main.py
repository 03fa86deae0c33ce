"""Entry point: `python -m relift.main [hydra overrides]`, like veRL's `python -m verl.trainer.main_ppo`.

The configuration is `relift/config/relift_trainer.yaml` (veRL's `ppo_trainer` plus ReLIFT's keys).
Before Ray starts, every training file is validated (`relift.data`), so a bad row fails in seconds
with its file, row and field instead of after the workers are up.

With `trainer.device=cpu` the driver selects relift's CPU platform and `hf` rollout for every process
(`VERL_PLATFORM`, `VERL_USE_EXTERNAL_MODULES`) and starts a local Ray on the loopback interface with one
logical GPU per training process, or attaches to the cluster at `RAY_ADDRESS` as veRL does on GPU.
veRL is imported only after that, because it resolves the platform at import time.
"""

from __future__ import annotations

import os

import hydra
from omegaconf import DictConfig, OmegaConf

RAY_LOOPBACK_ADDRESS = "127.0.0.2"

CPU_ENV = {
    "VERL_PLATFORM": "cpu",
    "VERL_USE_EXTERNAL_MODULES": "relift.verl_ext",
    "TOKENIZERS_PARALLELISM": "false",
    # veRL's plugin auto-discovery and Ray's usage stats have nothing to do on an offline CPU box.
    "RAY_USAGE_STATS_ENABLED": "0",
}


def validate_training_data(config: DictConfig) -> int:
    """Validate every training file, and its demonstrations against relift.max_failing_demonstrations when
    ReLIFT trains them with relift's reward (relift.data.check_demonstrations); returns the number of rows."""
    from relift.data import DataFileError, DataRowError, FailingDemonstrations, validate_file

    relift, reward = config.relift, config.reward.custom_reward_function
    limit = relift.max_failing_demonstrations
    if not (isinstance(limit, int | float) and 0 <= limit <= 1):
        raise SystemExit(f"[relift] relift.max_failing_demonstrations={limit}: a share from 0 to 1, e.g. 0.5 "
                         "(1 turns the check off)")
    # The check is relift's reward's rule: another reward, or one without the think block, may accept others.
    checked = (relift.enable and reward.path == "pkg://relift.reward" and reward.name == "compute_score"
               and reward.get("reward_kwargs", {}).get("require_think", True))
    files = config.data.train_files
    total = 0
    for path in [files] if isinstance(files, str) else files:
        # With the teacher on, rows without a demonstration may get one during training.
        require_target = relift.enable and relift.require_demonstrations and not relift.teacher.enable
        try:
            rows = validate_file(path, require_target=require_target,
                                 max_failing_demonstrations=limit if checked else None)
        except FailingDemonstrations as error:
            raise SystemExit(f"[relift] {error}: prepare the file with dataset/prepare_train.py (--failing-demos "
                             f"drop or rl-only), or raise relift.max_failing_demonstrations={limit} (1: no check)"
                             ) from None
        except (DataFileError, DataRowError) as error:
            raise SystemExit(f"[relift] {error}") from None
        print(f"[relift] {path}: {rows} rows valid")
        total += rows
    # veRL's dataloader drops the last partial batch and stops after total_epochs: asking for more steps
    # than that trains fewer and leaves no final checkpoint.
    steps, epochs, batch = config.trainer.total_training_steps, config.trainer.total_epochs, config.data.train_batch_size
    per_epoch = total // batch
    if steps is not None and steps > per_epoch * epochs:
        more = f"trainer.total_epochs>={-(-steps // per_epoch)}" if per_epoch else f"data.train_batch_size<={total}"
        raise SystemExit(
            f"[relift] trainer.total_training_steps={steps} needs {steps * batch} training rows "
            f"(data.train_batch_size={batch}), but {files} holds {total} rows x trainer.total_epochs={epochs}: "
            f"set trainer.total_training_steps<={per_epoch * epochs} or {more}"
        )
    return total


def check_model_path(config: DictConfig) -> None:
    path = config.actor_rollout_ref.model.path
    local = path.startswith(("/", "./", "../", "~")) or os.path.exists(path)
    if local and not os.path.exists(os.path.join(os.path.expanduser(path), "config.json")):
        raise SystemExit(f"[relift] actor_rollout_ref.model.path={path}: no Hugging Face model there (no config.json)")


def check_teacher(config: DictConfig) -> None:
    """The teacher endpoint answers and serves the model, before Ray starts (one request)."""
    if not (config.relift.enable and config.relift.teacher.enable):
        return
    from relift.teacher import config_from, preflight

    problem = preflight(config_from(config.relift.teacher))
    if problem:
        raise SystemExit(f"[relift] {problem} (relift.teacher.base_url, relift.teacher.model)")
    print(f"[relift] teacher {config.relift.teacher.model} answers at {config.relift.teacher.base_url}")


def check_ray_address() -> None:
    """A driver given RAY_ADDRESS needs RAY_AUTH_MODE: Ray turns token authentication on by itself only for
    a cluster it finds locally, and otherwise retries for a minute before "Failed to connect"."""
    address = os.environ.get("RAY_ADDRESS")
    if address and address != "auto" and not os.environ.get("RAY_AUTH_MODE"):
        raise SystemExit(
            f"[relift] RAY_ADDRESS={address} is set but RAY_AUTH_MODE is not: clusters started by `ray start` "
            "(examples/ray_start_head.sh) use token authentication; export RAY_AUTH_MODE=token (with "
            "RAY_AUTH_TOKEN_PATH if the token is not at ~/.ray/auth_token), or RAY_AUTH_MODE=disabled for a "
            "cluster started without it"
        )


def validate_with_verl(config: DictConfig) -> None:
    """veRL's own configuration validation, which its main_ppo runs before run_ppo."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))


def training_steps(config: DictConfig, rows: int) -> int:
    return config.trainer.total_training_steps or rows // config.data.train_batch_size * config.trainer.total_epochs


def check_loggers(config: DictConfig) -> None:
    """Every backend of trainer.logger can start (relift.loggers): veRL starts them after the workers are up."""
    from relift.loggers import logger_problems

    problems = logger_problems(config.trainer.logger)
    if problems:
        raise SystemExit("[relift] " + "; ".join(problems))


def check_checkpoint_disk(config: DictConfig, rows: int) -> list[str]:
    """The checkpoints' sizes and the disk they need (relift.checkpoints); refuses a folder without room."""
    from relift.checkpoints import disk_plan, disk_problem, free_bytes

    try:
        disk = disk_plan(config, training_steps(config, rows))
    except OSError as error:
        raise SystemExit(f"[relift] actor_rollout_ref.model.path={config.actor_rollout_ref.model.path}: "
                         f"its config.json does not load ({str(error).splitlines()[0]})") from None
    free = free_bytes(disk.folder)
    problem = disk_problem(disk, free)
    if problem:
        raise SystemExit(f"[relift] {problem}")
    return disk.lines(free)


def plan(config: DictConfig, rows: int, checkpoints: list[str]) -> str:
    """What a run would do, for DRY_RUN=1."""
    trainer, data, relift = config.trainer, config.data, config.relift
    gpus = trainer.n_gpus_per_node * trainer.nnodes
    n = config.actor_rollout_ref.rollout.n
    per_epoch = rows // data.train_batch_size
    steps = training_steps(config, rows)
    micro = ("by tokens (dynamic batching)" if config.actor_rollout_ref.actor.use_dynamic_bsz
             else f"{relift.sft_micro_batch_size_per_gpu} per forward")
    lines = [
        f"world size        {gpus} GPUs ({trainer.nnodes} node(s) x {trainer.n_gpus_per_node}), device {trainer.device}",
        f"per step          {data.train_batch_size} prompts x {n} responses = {data.train_batch_size * n}, "
        f"{data.train_batch_size * n // gpus} per GPU",
        f"supervised        {'off (relift.enable=false)' if not relift.enable else f'{relift.sft_trigger_size} demonstrations per update = {relift.sft_trigger_size // gpus} per GPU, micro-batches {micro}'}",
        f"steps             {steps} ({rows} rows: {per_epoch} per epoch x {trainer.total_epochs} epochs"
        f"{'' if not trainer.total_training_steps else ', capped by trainer.total_training_steps'})",
        *checkpoints,
        f"Ray               {'attach to RAY_ADDRESS=' + os.environ['RAY_ADDRESS'] if os.environ.get('RAY_ADDRESS') else 'start a local cluster'}",
    ]
    return "[relift] dry run: configuration and data valid; nothing started\n  " + "\n  ".join(lines)


def start_cpu_ray(config: DictConfig) -> None:
    import ray

    os.environ.update(CPU_ENV)
    # Hydra's search path already imported veRL in this process, before the variables above were set.
    import relift.verl_ext  # noqa: F401

    if ray.is_initialized():
        return
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    # veRL's runtime env with the user's ray_kwargs.ray_init.runtime_env on top, as its run_ppo does on GPU:
    # on a cluster that is how environment variables reach the workers of other nodes.
    user_env = config.ray_kwargs.get("ray_init", {}).get("runtime_env", {})
    runtime_env = OmegaConf.to_container(OmegaConf.merge(get_ppo_ray_runtime_env(config), user_env))
    runtime_env.setdefault("env_vars", {}).update(CPU_ENV)
    if os.environ.get("RAY_ADDRESS"):
        # A running cluster (examples/ray_start_head.sh), as veRL's run_ppo attaches on GPU.
        ray.init(runtime_env=runtime_env, logging_level="WARNING")
        return
    num_gpus = config.trainer.n_gpus_per_node * config.trainer.nnodes
    ray.init(
        # A new local instance: never one that `ray start` on this machine recorded (RAY_ADDRESS attaches).
        address="local",
        # Loopback only. Ray swaps 127.0.0.1 itself for the host's routable address
        # (ray._private.services.resolve_ip_for_localhost); another address of 127.0.0.0/8 stays on `lo`.
        _node_ip_address=RAY_LOOPBACK_ADDRESS,
        # Logical slots, not cores: veRL reserves 3 CPUs per GPU bundle, plus its task runner, agent-loop
        # and reward workers. The phases of a step run one after another, so they do not compete.
        num_cpus=4 * num_gpus + 8,
        num_gpus=num_gpus,
        include_dashboard=False,
        runtime_env=runtime_env,
        logging_level="WARNING",
    )


def run(config: DictConfig) -> None:
    """Check the configuration, the data, the model path, the loggers and the disk for the checkpoints,
    start Ray, and train. With DRY_RUN=1, print the plan after the checks instead."""
    from relift.checks import config_problems, resume_problem

    problems = config_problems(config) + [problem for problem in [resume_problem(config)] if problem]
    if problems:
        raise SystemExit("[relift] configuration errors:\n  " + "\n  ".join(problems))
    rows = validate_training_data(config)
    check_model_path(config)
    check_teacher(config)
    check_ray_address()
    check_loggers(config)
    validate_with_verl(config)
    checkpoints = check_checkpoint_disk(config, rows)
    if os.environ.get("DRY_RUN") == "1":
        print(plan(config, rows, checkpoints))
        return
    print("[relift] " + "\n[relift] ".join(checkpoints), flush=True)
    if config.trainer.device == "cpu":
        start_cpu_ray(config)

    import ray

    from relift.task_runner import ReLIFTTaskRunner
    from verl.trainer.main_ppo import run_ppo

    try:
        run_ppo(config, task_runner_class=ReLIFTTaskRunner)
    except ray.exceptions.RayTaskError as error:
        # relift's own stops (grading failed, a save failed) say everything in one line: no Ray traceback.
        if str(error.cause).startswith("[relift]"):
            raise SystemExit(str(error.cause)) from None
        raise
    finally:
        ray.shutdown()


@hydra.main(config_path="config", config_name="relift_trainer", version_base=None)
def main(config: DictConfig) -> None:
    run(config)


if __name__ == "__main__":
    main()
