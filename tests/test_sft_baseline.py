"""End to end on CPU: the SFT-only baseline, veRL's own SFTTrainer through `python -m relift.sft_baseline`."""

import json
import os
import re
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from relift.checkpoints import parameter_count


@pytest.fixture(scope="module")
def data_and_model(tiny):
    """The 64 prepared training rows and the random tiny model."""
    return tiny["train"], tiny["model"]


def dry_run(train: str, model: str, out: str, *extra: str) -> list[str]:
    return ["--dry-run", "--train", train, "--model", model, "--out", out, "--batch-size", "8", "--lr", "1e-5", *extra]


def test_dry_run_plans_epochs_as_verl_steps_them(data_and_model, tmp_path):
    """The command line: the plan's step count is veRL's (drop_last per rank), and nothing is written."""
    train, model = data_and_model
    out = str(tmp_path / "run")
    ok = subprocess.run([sys.executable, "-m", "relift.sft_baseline",
                         *dry_run(train, model, out, "--epochs", "3", "--world-size", "2", "--lr-scheduler", "cosine",
                                  "--warmup-ratio", "0.1", "--max-length", "512")],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2 rank(s), batch 8 (4 per rank), 8 steps per epoch, 24 steps (3 epochs)" in ok.stdout
    assert "lr 1e-05, cosine schedule, 2 warm-up steps" in ok.stdout
    assert "dry run: configuration and data valid; nothing started" in ok.stdout
    assert "Warning" not in ok.stdout + ok.stderr and not os.path.exists(out)


def test_dry_run_refuses_what_would_stop_training_before_any_model_is_built(data_and_model, tmp_path, capsys):
    """relift.sft_baseline's entry point in this process; nothing is written to the run folder."""
    from relift.sft_baseline import main

    train, model = data_and_model
    out = str(tmp_path / "run")
    # With Ulysses size 2, a sequence spans 2 of the 4 ranks: 2 data-parallel ranks share each batch.
    main(dry_run(train, model, out, "--epochs", "1", "--world-size", "4", "--batch-size", "6",
                 "engine.ulysses_sequence_parallel_size=2"))
    assert "4 rank(s), batch 6 (3 per rank), 10 steps per epoch" in capsys.readouterr().out

    refusals = {
        ("--steps", "2", "--world-size", "3"): "--batch-size 8 does not split over 3 ranks; use a multiple of 3",
        ("--steps", "2", "--max-length", "4096"): "--max-length 4096 is over the model's max_position_embeddings 2048",
        ("--steps", "2", "--max-length", "40"): f"{train}: row 0, field target: prompt + demonstration is",
        ("--epochs", "1", "--warmup-ratio", "1.5"): "--warmup-ratio 1.5: must be in [0, 1), e.g. 0.1",
        # veRL 0.9.1's run-time size rules on the SFT trainer's path (relift.sft_baseline.config_problem)
        ("--steps", "2", "data.use_dynamic_bsz=false", "data.micro_batch_size_per_gpu=3"):
            "data.micro_batch_size_per_gpu=3 must divide the batch per data-parallel rank, --batch-size 8 / 1 = 8 "
            "(data.use_dynamic_bsz=false): e.g. data.micro_batch_size_per_gpu=1",
        ("--steps", "2", "--max-length", "512", "data.max_token_len_per_gpu=256"):
            "data.max_token_len_per_gpu=256 is below --max-length 512, the longest sequence "
            "(data.use_dynamic_bsz=true packs micro-batches up to it): set data.max_token_len_per_gpu=512",
        ("--steps", "2", "--save-freq", "0"): "trainer.save_freq=0: veRL's SFT trainer takes the step modulo it",
        ("--steps", "2", "--world-size", "4", "engine.ulysses_sequence_parallel_size=3"):
            "engine.ulysses_sequence_parallel_size=3 must divide the 4 ranks: "
            "e.g. engine.ulysses_sequence_parallel_size=2",
        ("--steps", "2", "--world-size", "4", "engine.fsdp_size=3"):
            "engine.fsdp_size=3 must divide the 4 ranks, or be -1 (all of them): e.g. engine.fsdp_size=-1",
        ("--steps", "2", "--world-size", "2", "engine.ulysses_sequence_parallel_size=2",
         "model.use_remove_padding=false"):
            "engine.ulysses_sequence_parallel_size=2 needs model.use_remove_padding=true",
        ("--steps", "2", "--world-size", "4", "--batch-size", "9", "engine.ulysses_sequence_parallel_size=2"):
            "--batch-size 9 does not split over the data-parallel size 2 (4 ranks / Ulysses size 2); "
            "use a multiple of 2",
    }
    for extra, message in refusals.items():
        with pytest.raises(SystemExit) as refused:
            main(dry_run(train, model, out, *extra))
        # a one-line refusal, or argparse's usage and error on stderr (exit 2)
        said = capsys.readouterr().err if refused.value.code == 2 else str(refused.value.code)
        assert message in said, (extra, said)
    assert not os.path.exists(out)


@pytest.mark.e2e
def test_a_run_killed_after_an_epoch_resumes_trains_the_steps_left_and_leaves_a_model_that_learnt(data_and_model,
                                                                                                   tmp_path):
    """Killed right after its end-of-epoch checkpoint, a 3-epoch run resumes at the next epoch's first batch and
    trains the steps it has left, then saves and links the last one. veRL 0.9.1 alone (veRL#7401) restored the
    exhausted loader state of that checkpoint: the next epoch ran 0 batches and the run stopped an epoch short.
    Over the two sessions the loss falls, the final model loads in fp32, and the compute summary covers both."""
    train, model = data_and_model
    out = str(tmp_path / "run")
    command = [sys.executable, "-m", "relift.sft_baseline", "--train", train, "--model", model, "--out", out,
               "--epochs", "3", "--batch-size", "16", "--lr", "1e-3", "--save-freq", "after_each_epoch",
               "--device", "cpu", "data.micro_batch_size_per_gpu=16"]
    tracker = os.path.join(out, "checkpoints", "latest_checkpointed_iteration.txt")
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while not os.path.exists(tracker) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        first.kill()
        first.wait()
    with open(tracker) as f:  # 64 rows / batch 16 = 4 steps per epoch
        assert f.read() == "4", "the first run was not stopped between its first and second checkpoints"

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    losses = {int(step): float(loss) for text in [(tmp_path / "first.log").read_text(), resumed.stdout]
              for step, loss in re.findall(r"\bstep:(\d+) - .*train/loss:([\d.]+)", text)}  # after a progress bar
    steps = [int(step) for step in re.findall(r"^step:(\d+) - .*train/loss", resumed.stdout, re.MULTILINE)]
    assert steps == list(range(5, 13)), steps
    assert losses[12] < losses[1] - 0.2, losses

    final = os.path.join(out, "checkpoints", "global_step_12", "huggingface")
    assert f"[sft_baseline] final HF model loads: {final}" in resumed.stdout
    assert os.path.realpath(os.path.join(out, "final")) == os.path.realpath(final)
    AutoModelForCausalLM.from_pretrained(final)
    initial, trained = load_file(os.path.join(model, "model.safetensors")), load_file(f"{final}/model.safetensors")
    assert trained.keys() == initial.keys()
    assert all(t.dtype == torch.float32 for t in trained.values())  # trained in fp32 (veRL's config.json says bf16)
    assert not torch.equal(trained["model.embed_tokens.weight"], initial["model.embed_tokens.weight"])

    # Compute accounting: 12 steps of 16 of the 64 demonstrations, the whole run supervised; the first
    # session's wall time travelled with its checkpoint.
    first_wall = json.load(open(os.path.join(out, "checkpoints", "global_step_4", "relift_account.json")))["wall_s"]
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert (summary["arm"], summary["steps"], summary["sft_updates"]) == ("sft", 12, 12)
    assert (summary["demos_used"], summary["demos_available"], summary["tokens_generated"]) == (64, 64, 0)
    assert summary["sft_tokens_trained"] > 12 * 16 and summary["sft_wall_share"] == 1.0
    # Compute: every trained token, prompt included, at 6N; no RL step.
    assert summary["parameters"] == parameter_count(model) and summary["rl_updates"] == 0
    assert summary["tokens_in_sft_updates"] > summary["sft_tokens_trained"]
    assert summary["flops"] == 6 * summary["parameters"] * summary["tokens_in_sft_updates"]
    assert summary["wall_s"] > first_wall > 0
    assert "[relift] compute for this run (sft, 12 steps)" in resumed.stdout
