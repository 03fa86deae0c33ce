"""Entry point: `python -m relift.main [hydra overrides]`, like veRL's `python -m verl.trainer.main_ppo`.

The configuration is `relift/config/relift_trainer.yaml` (veRL's `ppo_trainer` plus ReLIFT's keys).
Before Ray starts, every training file is validated (`relift.data`), so a bad row fails in seconds
with its file, row and field instead of after the workers are up.

With `trainer.device=cpu` the driver selects relift's CPU platform and `hf` rollout for every process
(`VERL_PLATFORM`, `VERL_USE_EXTERNAL_MODULES`) and starts a local Ray on the loopback interface with one
logical GPU per training process. veRL is imported only after that, because it resolves the platform at
import time.
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


def validate_training_data(config: DictConfig) -> None:
    from relift.data import validate_file

    files = config.data.train_files
    total = 0
    for path in [files] if isinstance(files, str) else files:
        rows = validate_file(path, require_target=config.relift.enable and config.relift.require_demonstrations)
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


def start_cpu_ray(config: DictConfig) -> None:
    import ray

    os.environ.update(CPU_ENV)
    # Hydra's search path already imported veRL in this process, before the variables above were set.
    import relift.verl_ext  # noqa: F401

    if ray.is_initialized():
        return
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    runtime_env = OmegaConf.to_container(OmegaConf.create(get_ppo_ray_runtime_env(config)))
    runtime_env.setdefault("env_vars", {}).update(CPU_ENV)
    num_gpus = config.trainer.n_gpus_per_node * config.trainer.nnodes
    ray.init(
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
    """Check the configuration and the data, start Ray, and train."""
    from relift.checks import config_problems

    problems = config_problems(config)
    if problems:
        raise SystemExit("[relift] configuration errors:\n  " + "\n  ".join(problems))
    validate_training_data(config)
    if config.trainer.device == "cpu":
        start_cpu_ray(config)

    import ray

    from relift.task_runner import ReLIFTTaskRunner
    from verl.trainer.main_ppo import run_ppo

    run_ppo(config, task_runner_class=ReLIFTTaskRunner)
    ray.shutdown()


@hydra.main(config_path="config", config_name="relift_trainer", version_base=None)
def main(config: DictConfig) -> None:
    run(config)


if __name__ == "__main__":
    main()
