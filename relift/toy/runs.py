"""Runs on the digit-task toy: build its data and warm-started model, train with `relift.main`, read back
veRL's metrics log. Shared by `relift.demo`, `bench/` and the tests.

The toy's settings are `relift/config/toy/digits.yaml`, composed over the trainer's configuration by
Hydra (`toy_config`), as `python -m relift.main device=cpu toy=digits` composes them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

from omegaconf import DictConfig

from relift.checkpoints import latest_step
from relift.toy.digit_tasks import DATA_SOURCE, TYPES, build

WARM_START_STEPS = 300
WARM_START_ROWS = 4096
VAL_PER_TYPE = 640


def toy_config(*overrides: str) -> DictConfig:
    """The trainer's configuration with `device=cpu toy=digits` (and `overrides`), as relift.main composes it."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="relift.config", version_base=None):
        return compose(config_name="relift_trainer", overrides=["device=cpu", "toy=digits", *overrides])


def run_logged(cmd: list[str], log_path: str | None = None, env: dict | None = None) -> None:
    """Run a command; with `log_path`, its output goes to the file and relift's own lines to the terminal.
    A SIGTERM to this process (`kill <pid>` of make demo or make bench) is passed on to the command, which
    then stops its own processes (relift.main shuts its Ray down), instead of leaving it running."""
    print("$ " + " ".join(cmd), flush=True)
    piped = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True} if log_path else {}
    process = subprocess.Popen(cmd, env=env, **piped)
    previous = signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    try:
        if log_path is not None:
            _relay(process.stdout, log_path)
        code = process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code:
        raise SystemExit(f"{' '.join(cmd[1:3])} failed (exit {code})" + (f"; full log: {log_path}" if log_path else ""))


def _relay(stream, log_path: str) -> None:
    """Every line to the log file; ReLIFT's one line per step and its blocks (a `[relift]` header, then
    indented lines: the compute summary) and errors to the terminal."""
    with open(log_path, "w") as log:
        in_block = False
        for line in stream:
            log.write(line)
            log.flush()
            text = line.split("[0m ", 1)[-1].rstrip()
            in_block = (in_block and text.startswith("  ")) or "[relift]" in line
            if in_block or "Error" in line or "Traceback" in line:
                print(text, flush=True)


def build_inputs(out: str, steps: int, seed: int = 0, warm_start_steps: int = WARM_START_STEPS,
                 dev_per_type: int = 0) -> dict[str, str]:
    """Digit-task data for `steps` steps of `toy=digits` batches and the warm-started tiny model under
    `out` (the model is reused when present); "dev" too with `dev_per_type`."""
    data_dir, model_dir = os.path.join(out, "data"), os.path.join(out, "tiny-model")
    paths = build(data_dir, train_rows=steps * toy_config().data.train_batch_size, val_per_type=VAL_PER_TYPE,
                  warm_start_rows=WARM_START_ROWS, seed=seed, dev_per_type=dev_per_type)
    if not os.path.exists(os.path.join(model_dir, "model.safetensors")):
        run_logged([sys.executable, "-m", "relift.toy.tiny_model", "--data", paths["train"], "--out", model_dir,
                    "--warm-start-data", paths["warm_start"], "--warm-start-steps", str(warm_start_steps),
                    "--seed", str(seed)])
    return {"model": model_dir, **{name: path for name, path in paths.items() if name != "warm_start"}}


def read_metrics(path: str) -> list[dict]:
    """veRL's file logger lines -> one dict per training step (step 0 = validation before training). A last
    line not yet ended (a run still writing it) is left out."""
    rows = []
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break
            record = json.loads(line)
            rows.append({"step": record["step"], **record["data"]})
    return [r for r in rows if "relift/buffer_size" in r or "critic/score/mean" in r]


def with_overall(per_type: dict[str, float]) -> dict[str, float]:
    """Accuracy per type plus "overall", their mean (the types have equally many held-out questions)."""
    return {**per_type, "overall": sum(per_type[t] for t in TYPES) / len(TYPES)}


def held_out(path: str) -> list[tuple[int, dict[str, float]]]:
    """(step, {type: accuracy, "overall": mean over types}) for every validation in a metrics log."""
    curve = []
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            data = record["data"]
            per_type = {t: data.get(f"val-core/{DATA_SOURCE.format(t)}/acc/mean@1") for t in TYPES}
            if all(v is not None for v in per_type.values()):
                curve.append((record["step"], with_overall(per_type)))
    return curve


def train(inputs: dict[str, str], run_dir: str, steps: int, overrides: list[str], resume: bool = False) -> str:
    """One `python -m relift.main device=cpu toy=digits` run; returns the path of its metrics log. With
    `resume`, the run continues from its checkpoint of the last step (saved at the end of every run) to
    `steps`, logging to a file of its own (veRL's file logger starts its file anew)."""
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    metrics_path = os.path.join(run_dir, f"metrics-to-step{steps}.jsonl" if resume else "metrics.jsonl")
    if not resume:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    if os.path.exists(metrics_path):
        os.remove(metrics_path)
    os.makedirs(run_dir, exist_ok=True)
    command = [
        sys.executable, "-m", "relift.main",
        "device=cpu",
        "toy=digits",
        f"actor_rollout_ref.model.path={inputs['model']}",
        f"data.train_files={inputs['train']}",
        f"data.val_files={inputs['val']}",
        f"trainer.total_training_steps={steps}",
        f"trainer.save_freq={steps}",
        "trainer.logger=[file]",
        f"trainer.default_local_dir={ckpt_dir}",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
        # Hydra's own run folder goes with the run, not into the working directory.
        f"hydra.run.dir={run_dir}/hydra",
        *overrides,
    ]
    env = {**os.environ, "VERL_FILE_LOGGER_PATH": metrics_path, "PYTHONUNBUFFERED": "1"}
    run_logged(command, log_path=os.path.join(run_dir, "train.log"), env=env)
    return metrics_path


def latest_hf_model(ckpt_dir: str) -> str:
    """The Hugging Face model of the checkpoint veRL marked as the latest."""
    step = latest_step(ckpt_dir)
    if step is None:
        raise FileNotFoundError(f"{ckpt_dir}: no checkpoint marked as the latest")
    return os.path.join(ckpt_dir, f"global_step_{step}", "actor", "huggingface")
