"""Shared fixtures: a tiny model and synthetic data, built offline once per test session."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Synthetic arithmetic data and a randomly initialised tiny Qwen2 model (every answer wrong)."""
    root = tmp_path_factory.mktemp("tiny")
    data, model = str(root / "data"), str(root / "model")
    subprocess.run(
        [sys.executable, os.path.join(REPO, "dataset", "synthetic_math.py"), "--out", data, "--train-rows", "64",
         "--val-rows", "8", "--warm-start-rows", "8"],
        check=True,
    )
    subprocess.run(
        [sys.executable, "-m", "relift.tiny_model", "--data", os.path.join(data, "train.parquet"), "--out", model,
         "--hidden", "64"],
        check=True,
    )
    return {"data": data, "model": model, "train": os.path.join(data, "train.parquet"),
            "val": os.path.join(data, "val.parquet")}


def cpu_overrides(tiny, out_dir, steps: int) -> list[str]:
    return [
        "device=cpu",
        f"actor_rollout_ref.model.path={tiny['model']}",
        f"data.train_files={tiny['train']}",
        f"data.val_files={tiny['val']}",
        f"trainer.total_training_steps={steps}",
        "trainer.logger=[file]",
        f"trainer.default_local_dir={out_dir}/checkpoints",
        "data.max_response_length=24",
    ]


def read_metrics(path) -> list[dict]:
    with open(path) as f:
        return [{"step": r["step"], **r["data"]} for r in map(json.loads, f)]
