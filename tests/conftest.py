"""Shared fixtures: the one builder of the tests' data and tiny models, run once per test session, offline."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from helpers import REPO

from relift.toy import tiny_model
from relift.toy.digit_tasks import build


@pytest.fixture(autouse=True, scope="session")
def _fixtures_in_a_temporary_folder(tmp_path_factory):
    """Module and session fixtures run in a temporary working directory too (Hydra's outputs/<date>/ of a
    training they start)."""
    previous = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("session-cwd"))
    yield
    os.chdir(previous)


@pytest.fixture(autouse=True)
def _in_a_temporary_folder(tmp_path_factory, monkeypatch):
    """Every test runs in a temporary working directory of its own, as TRL's tests do: what a command writes
    there (Hydra's outputs/<date>/, veRL's file logger's ./<project>/<experiment>.jsonl, TensorBoard's
    folder) stays out of the tree."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Digit-task data and tiny Qwen2 models, paths by name:

    - data: the splits' folder; train_raw: 256 training rows (two of the GPU examples' batches of 128);
      train: the first 64 of them through dataset/prepare_train.py from an OpenR1-style jsonl (problem /
      solution / answer), as a user's own data would come; val: 3 held-out questions a type;
    - model: randomly initialised at the demo's size (head_dim 32, the least vLLM's CPU attention takes):
      every answer is wrong, so every question is hardest;
    - warm_model: the demo's size (hidden 128) warm-started for 300 steps on copy: it solves most copy
      questions at T=1 (78% measured), so GRPO has advantages (hidden 64 has not learnt to copy after 300
      steps: 0%).
    """
    root = tmp_path_factory.mktemp("tiny")
    data = str(root / "data")
    paths = build(data, train_rows=256, val_per_type=3, warm_start_rows=4096, seed=0)
    frame = pd.read_parquet(paths["train"]).head(64)
    openr1 = root / "openr1.jsonl"
    with open(openr1, "w") as f:
        for prompt, target, reward_model in zip(frame.prompt, frame.target, frame.reward_model, strict=True):
            row = {"problem": prompt[-1]["content"], "solution": target[0]["content"],
                   "answer": reward_model["ground_truth"]}
            f.write(json.dumps(row) + "\n")
    train = str(root / "prepared.parquet")
    subprocess.run([sys.executable, os.path.join(REPO, "dataset", "prepare_train.py"), "--input", str(openr1),
                    "--output", train, "--system-prompt", prompt[0]["content"]], check=True, capture_output=True)
    model, warm_model = str(root / "model"), str(root / "warm-model")
    tiny_model.main(["--data", train, "--out", model])
    tiny_model.main(["--data", train, "--out", warm_model, "--warm-start-data", paths["warm_start"],
                     "--warm-start-steps", "300"])
    return {"data": data, "train_raw": paths["train"], "train": train, "val": paths["val"], "model": model,
            "warm_model": warm_model}
