"""End to end on CPU: the SFT-only baseline, veRL's own SFTTrainer through `python -m relift.sft_baseline`."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


@pytest.fixture(scope="module")
def data_and_model(tmp_path_factory):
    """Digit-task data and a random tiny model only: conftest's `tiny` also warm-starts a model (minutes)."""
    root = tmp_path_factory.mktemp("sft_baseline")
    subprocess.run([sys.executable, "-m", "relift.toy.digit_tasks", "--out", str(root / "data"), "--train-rows", "64",
                    "--val-per-type", "3", "--warm-start-rows", "8"], check=True)
    train = str(root / "data" / "train.parquet")
    subprocess.run([sys.executable, "-m", "relift.toy.tiny_model", "--data", train, "--out", str(root / "model"),
                    "--hidden", "64"], check=True)
    return train, str(root / "model")


def dry_run(train: str, model: str, out: str, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "relift.sft_baseline", "--dry-run", "--train", train, "--model", model,
               "--out", out, "--batch-size", "8", "--lr", "1e-5", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_dry_run_plans_epochs_and_refuses_what_would_stop_training(data_and_model, tmp_path):
    """The plan's step count is veRL's (drop_last per rank); the refusals come before any model is built,
    and nothing is written to the run folder."""
    train, model = data_and_model
    out = str(tmp_path / "run")
    ok = dry_run(train, model, out, "--epochs", "3", "--world-size", "2", "--lr-scheduler", "cosine",
                 "--warmup-ratio", "0.1", "--max-length", "512")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2 rank(s), batch 8 (4 per rank), 8 steps per epoch, 24 steps (3 epochs)" in ok.stdout
    assert "lr 1e-05, cosine schedule, 2 warm-up steps" in ok.stdout
    assert "dry run: configuration and data valid; nothing started" in ok.stdout
    assert "Warning" not in ok.stdout + ok.stderr and not os.path.exists(out)

    refusals = {
        ("--steps", "2", "--world-size", "3"): "--batch-size 8 does not split over 3 ranks; use a multiple of 3",
        ("--steps", "2", "--max-length", "4096"): "--max-length 4096 is over the model's max_position_embeddings 2048",
        ("--steps", "2", "--max-length", "40"): f"{train}: row 0, field target: prompt + demonstration is",
        ("--epochs", "1", "--warmup-ratio", "1.5"): "--warmup-ratio 1.5: must be in [0, 1), e.g. 0.1",
    }
    for extra, message in refusals.items():
        result = dry_run(train, model, out, *extra)
        assert result.returncode != 0 and message in result.stderr, (extra, result.stdout + result.stderr)
        assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_sft_baseline_loss_falls_and_hf_model_loads(data_and_model, tmp_path):
    train, model = data_and_model
    out = str(tmp_path / "run")
    command = [sys.executable, "-m", "relift.sft_baseline", "--train", train, "--model", model, "--out", out,
               "--steps", "4", "--batch-size", "8", "--lr", "1e-3", "--save-freq", "2", "--device", "cpu",
               "data.micro_batch_size_per_gpu=8"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    with open(os.path.join(out, "metrics.jsonl")) as f:
        losses = [json.loads(line)["data"]["train/loss"] for line in f]
    assert len(losses) == 4
    assert losses[-1] < losses[0] - 0.2, losses

    final = os.path.join(out, "checkpoints", "global_step_4", "huggingface")
    assert os.path.isdir(os.path.join(out, "checkpoints", "global_step_2", "huggingface"))
    assert f"[sft_baseline] final HF model loads: {final}" in result.stdout
    assert os.path.realpath(os.path.join(out, "final")) == os.path.realpath(final)
    AutoModelForCausalLM.from_pretrained(final)
    initial, trained = load_file(os.path.join(model, "model.safetensors")), load_file(f"{final}/model.safetensors")
    assert trained.keys() == initial.keys()
    assert all(t.dtype == torch.float32 for t in trained.values())  # trained in fp32 (veRL's config.json says bf16)
    assert not torch.equal(trained["model.embed_tokens.weight"], initial["model.embed_tokens.weight"])
