"""Entry point: `python -m relift.main [hydra overrides]`, like veRL's `python -m verl.trainer.main_ppo`.

The configuration is `relift/config/relift_trainer.yaml` (veRL's `ppo_trainer` plus ReLIFT's keys).
compose (Hydra) -> preflight (`relift.preflight`: every problem at once, in seconds, before any worker
is up) -> Ray -> veRL's `run_ppo` with relift's task runner. With `trainer.device=cpu` the driver
selects relift's CPU platform (relift.verl_ext) for every process and starts a local Ray on the loopback
interface, or attaches to the cluster at `RAY_ADDRESS` as veRL does on GPU (`relift.cpu`).
"""

from __future__ import annotations

import os
import sys
from importlib import resources

import hydra
from omegaconf import DictConfig

from relift import cpu
from relift.checks import supervised_settings
from relift.preflight import preflight, training_steps
from relift.sft_plan import describe


def plan(config: DictConfig, rows: int, checkpoints: list[str]) -> str:
    """What a run would do, for DRY_RUN=1."""
    trainer, data = config.trainer, config.data
    gpus = trainer.n_gpus_per_node * trainer.nnodes
    n = config.actor_rollout_ref.rollout.n
    per_epoch = rows // data.train_batch_size
    steps = training_steps(config, rows)
    lines = [
        f"world size        {gpus} GPUs ({trainer.nnodes} node(s) x {trainer.n_gpus_per_node}), "
        f"device {trainer.device}",
        f"per step          {data.train_batch_size} prompts x {n} responses = {data.train_batch_size * n}, "
        f"{data.train_batch_size * n // gpus} per GPU",
        "supervised        " + "\n                    ".join(supervised(config)),
        f"steps             {steps} ({rows} rows: {per_epoch} per epoch x {trainer.total_epochs} epochs"
        f"{'' if not trainer.total_training_steps else ', capped by trainer.total_training_steps'})",
        *checkpoints,
        "Ray               " + (f"attach to RAY_ADDRESS={os.environ['RAY_ADDRESS']}" if os.environ.get("RAY_ADDRESS")
                                else "start a local cluster"),
    ]
    return "[relift] dry run: configuration and data valid; nothing started\n  " + "\n  ".join(lines)


def supervised(config: DictConfig) -> list[str]:
    if not config.relift.enable:
        return ["off (relift.enable=false)"]
    return describe(supervised_settings(config))


def dry_run_requested() -> bool:
    """DRY_RUN=1: check the configuration and data, print the plan, start nothing; unset, empty or 0: train.
    Any other value (DRY_RUN=true) is refused rather than guessed (examples/common.sh reads it the same way).

    Raises SystemExit with one line for another value."""
    value = os.environ.get("DRY_RUN", "")
    if value not in ("", "0", "1"):
        raise SystemExit(f"[relift] DRY_RUN={value}: set DRY_RUN=1 to check without starting anything, or unset it "
                         "to run")
    return value == "1"


def usage() -> str:
    """`--help`: how to call it, and relift's own keys with their defaults and comments, from the YAML itself."""
    yaml = (resources.files("relift.config") / "relift_trainer.yaml").read_text().splitlines()
    start = yaml.index("relift:")
    end = next(i for i in range(start + 1, len(yaml)) if yaml[i] and not yaml[i][0].isspace() and yaml[i][0] != "#")
    keys = "\n".join(line for line in yaml[start:end] if line.strip())
    return f"""usage: python -m relift.main [key=value ...]

Trains with ReLIFT on veRL: Hydra overrides of relift/config/relift_trainer.yaml (veRL's ppo_trainer and
relift's keys below). Groups: device=cpu (relift's CPU path), interleave=paper (the paper's interleaving,
without relift's stabilizers), toy=digits (the digit-task toy).

  DRY_RUN=1 python -m relift.main ...     check the configuration and the data, print the plan, start nothing
  python -m relift.main --cfg job ...     print the whole composed configuration, veRL's keys included
  python -m relift.main --hydra-help      Hydra's own options

relift's keys (relift_trainer.yaml; device=cpu and interleave=paper change some):

{keys}"""


def run(config: DictConfig) -> None:
    """Preflight (relift.preflight: every problem, before Ray), then start Ray and train. With DRY_RUN=1,
    print the plan after the checks instead."""
    dry_run = dry_run_requested()
    report = preflight(config)
    if report.problems:
        header = [] if len(report.problems) == 1 else [f"[relift] {len(report.problems)} problems, nothing started:"]
        raise SystemExit("\n".join(header + [f"[relift] {problem}" for problem in report.problems]))
    for warning in report.warnings:
        print(f"[relift] warning: {warning}", flush=True)
    if dry_run:
        print(plan(config, report.rows, report.checkpoints))
        return
    print("[relift] " + "\n[relift] ".join(report.checkpoints), flush=True)
    if config.trainer.device == "cpu":
        cpu.start_ray(config)

    import ray
    from verl.trainer.main_ppo import run_ppo

    from relift.task_runner import KeepResult, ReLIFTTaskRunner

    runner = KeepResult(ReLIFTTaskRunner)
    try:
        run_ppo(config, task_runner_class=runner)
        # Printed here, not in the trainer's process: Ray's log streaming may drop a run's last lines.
        print("\n".join(ray.get(runner.results[-1])), flush=True)
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
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(usage())
        raise SystemExit(0)
    main()
