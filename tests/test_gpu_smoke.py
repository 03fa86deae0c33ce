"""examples/gpu_smoke.sh as a user runs it: skipped without CUDA, and its body (data, tiny model, a ReLIFT
and a GRPO run, the memory table) on relift's CPU path with SMOKE_DEVICE=cpu."""

import os
import subprocess
import sys

import pytest
import torch
from helpers import HF_ROLLOUT, REPO

SCRIPT = os.path.join(REPO, "examples", "gpu_smoke.sh")


def smoke(tmp_path, *overrides: str, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
           "OUT": str(tmp_path / "smoke"), **env}
    return subprocess.run(["bash", SCRIPT, *overrides], capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the smoke run would start")
def test_skipped_without_cuda(tmp_path):
    result = smoke(tmp_path)
    assert result.returncode == 0 and "[gpu_smoke] skipped: no CUDA device" in result.stdout
    assert not (tmp_path / "smoke").exists()


@pytest.mark.e2e
def test_cpu_path_runs_both_arms_and_prints_memory(tmp_path):
    # The script's mechanics, one step of each arm; vLLM rollouts and longer runs: test_e2e_cpu.py
    result = smoke(tmp_path, HF_ROLLOUT, "trainer.total_training_steps=1", SMOKE_DEVICE="cpu")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[gpu_smoke] relift: done" in result.stdout and "[gpu_smoke] grpo: done" in result.stdout
    table = result.stdout.split("actor peak memory (GiB) after each step")[1].splitlines()[2:]
    assert [line.split()[0] for line in table] == ["1"]
    assert all(line.split()[-1] == "1" for line in table)  # 16 hardest questions a step, M = 8


def test_a_dry_run_checks_both_arms_and_trains_nothing(tmp_path):
    result = smoke(tmp_path, HF_ROLLOUT, SMOKE_DEVICE="cpu", DRY_RUN="1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for arm in ("relift", "grpo"):
        assert "[relift] dry run: configuration and data valid; nothing started" in (
            tmp_path / "smoke" / f"{arm}.log").read_text()
    assert "actor peak memory" not in result.stdout and not (tmp_path / "smoke" / "checkpoints").exists()
