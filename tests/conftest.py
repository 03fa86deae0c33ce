"""Shared fixtures: a tiny model and synthetic data, built offline once per test session."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from helpers import REPO


@pytest.fixture(autouse=True)
def _in_a_temporary_folder(tmp_path_factory, monkeypatch):
    """Every test runs in a temporary working directory, as TRL's tests do: what a command writes there
    (Hydra's outputs/<date>/, veRL's file logger's ./<project>/<experiment>.jsonl) stays out of the tree."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Digit-task data and a randomly initialised tiny Qwen2 model (every answer wrong)."""
    root = tmp_path_factory.mktemp("tiny")
    data, model = str(root / "data"), str(root / "model")
    subprocess.run(
        [sys.executable, "-m", "relift.toy.digit_tasks", "--out", data, "--train-rows", "64", "--val-per-type", "3"],
        check=True,
    )
    subprocess.run(
        [sys.executable, "-m", "relift.toy.tiny_model", "--data", os.path.join(data, "train.parquet"), "--out", model,
         "--hidden", "64"],
        check=True,
    )
    # The training file goes through dataset/prepare_train.py from an OpenR1-style jsonl (problem /
    # solution / answer), as a user's own data would.
    frame = pd.read_parquet(os.path.join(data, "train.parquet"))
    openr1 = root / "openr1.jsonl"
    with open(openr1, "w") as f:
        for prompt, target, reward_model in zip(frame.prompt, frame.target, frame.reward_model, strict=True):
            row = {"problem": prompt[-1]["content"], "solution": target[0]["content"],
                   "answer": reward_model["ground_truth"]}
            f.write(json.dumps(row) + "\n")
    train = str(root / "prepared.parquet")
    subprocess.run(
        [sys.executable, os.path.join(REPO, "dataset", "prepare_train.py"), "--input", str(openr1), "--output", train,
         "--system-prompt", prompt[0]["content"]],
        check=True,
    )
    # The demo's size (hidden 128) warm-started on copy: it solves most copy questions at T=1 (78% measured),
    # so GRPO has advantages. Hidden 64 has not learnt to copy after 300 steps (0%).
    warm_model = str(root / "warm-model")
    subprocess.run(
        [sys.executable, "-m", "relift.toy.tiny_model", "--data", os.path.join(data, "train.parquet"),
         "--out", warm_model,
         "--warm-start-data", os.path.join(data, "warm_start.parquet"), "--warm-start-steps", "300"],
        check=True,
    )
    return {"data": data, "model": model, "warm_model": warm_model, "train": train,
            "val": os.path.join(data, "val.parquet")}
