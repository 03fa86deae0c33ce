"""End to end on CPU: the SFT-only baseline, veRL's own SFTTrainer through `python -m relift.sft_baseline`."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def data_and_model(tmp_path_factory):
    """Digit-task data and a random tiny model only: conftest's `tiny` also warm-starts a model (minutes)."""
    root = tmp_path_factory.mktemp("sft_baseline")
    subprocess.run([sys.executable, "-m", "relift.digit_tasks", "--out", str(root / "data"), "--train-rows", "64",
                    "--val-per-type", "3", "--warm-start-rows", "8"], check=True)
    train = str(root / "data" / "train.parquet")
    subprocess.run([sys.executable, "-m", "relift.tiny_model", "--data", train, "--out", str(root / "model"),
                    "--hidden", "64"], check=True)
    return train, str(root / "model")


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
    AutoModelForCausalLM.from_pretrained(final)
    initial, trained = load_file(os.path.join(model, "model.safetensors")), load_file(f"{final}/model.safetensors")
    assert trained.keys() == initial.keys()
    assert all(t.dtype == torch.float32 for t in trained.values())  # trained in fp32 (veRL's config.json says bf16)
    assert not torch.equal(trained["model.embed_tokens.weight"], initial["model.embed_tokens.weight"])
