"""`DRY_RUN=1 bash examples/<script>.sh`: every GPU example composes its full configuration and passes
relift's checks, veRL's own validation and the data and model-path checks, without Ray or a GPU."""

import concurrent.futures
import glob
import os
import re
import subprocess
import sys

import pytest
from helpers import REPO

EXAMPLES = sorted(
    path for path in glob.glob(os.path.join(REPO, "examples", "*.sh"))
    if not os.path.basename(path).startswith(("ray_", "run_relift", "gpu_smoke", "common"))
    and "sft-baseline" not in path and "sft-rl-baseline" not in path
)


@pytest.fixture(scope="module")
def inputs(tiny):
    return {"MODEL": tiny["model"], "TRAIN_FILES": tiny["train_raw"], "VAL_FILES": tiny["val"]}


@pytest.fixture(scope="module")
def long_context_model(inputs, tmp_path_factory):
    """The tiny model with the 16,384 positions that examples/prepare_model.py gives Qwen2.5-Math."""
    out = str(tmp_path_factory.mktemp("dry_run_16k") / "model")
    subprocess.run([sys.executable, os.path.join(REPO, "examples", "prepare_model.py"), "--base", inputs["MODEL"],
                    "--out", out, "--context", "16384", "--rope-theta", "40000", "--data", inputs["TRAIN_FILES"]],
                   check=True, capture_output=True)
    return out


def dry_run(script: str, hydra_dir: str, **env: str) -> subprocess.CompletedProcess:
    """The scripts work from the repository's root: Hydra's run folder goes to hydra_dir."""
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    env = {**os.environ, "DRY_RUN": "1", "PATH": path, **env}
    hydra = [] if script.endswith("-sft-baseline.sh") else [f"hydra.run.dir={hydra_dir}"]
    return subprocess.run(["bash", script, *hydra], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def dry_runs(inputs, long_context_model, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every dry run of this module, two at a time: each is one Python process that mostly imports."""
    long = {**inputs, "MODEL": long_context_model}
    runs = {os.path.basename(script): (script, {**inputs, **({"RAY_ADDRESS": "127.0.0.2:6379"} if "two-nodes" in script
                                                             else {})}) for script in EXAMPLES}
    runs["missing model"] = (os.path.join(REPO, "examples", "qwen2.5-math-7b.sh"),
                             {**inputs, "MODEL": "/nonexistent/model"})
    runs["sft"] = (os.path.join(REPO, "examples", "qwen2.5-math-7b-sft-baseline.sh"), long)
    runs["sft short context"] = (os.path.join(REPO, "examples", "qwen2.5-math-7b-sft-baseline.sh"), inputs)
    runs["sft rl"] = (os.path.join(REPO, "examples", "qwen2.5-math-7b-sft-rl-baseline.sh"), long)
    hydra = tmp_path_factory.mktemp("dry_run_hydra")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(dry_run, script, str(hydra / str(i)), **env)
                   for i, (name, (script, env)) in enumerate(runs.items())}
        return {name: future.result() for name, future in futures.items()}


def test_every_example_is_covered():
    assert {os.path.basename(p) for p in EXAMPLES} >= {"qwen2.5-math-7b.sh", "qwen2.5-math-7b-rl-baseline.sh",
                                                        "qwen2.5-math-7b-two-nodes.sh"}


@pytest.mark.parametrize("script", EXAMPLES, ids=os.path.basename)
def test_example_dry_run(script, dry_runs):
    cluster = "two-nodes" in script
    result = dry_runs[os.path.basename(script)]
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "[relift] dry run: configuration and data valid; nothing started" in output
    assert "[validate_config] All configuration checks passed successfully!" in output
    gpus = "16 GPUs (2 node(s) x 8)" if "two-nodes" in script else "8 GPUs (1 node(s) x 8)"
    assert gpus in output
    assert ("attach to RAY_ADDRESS=127.0.0.2:6379" if cluster else "start a local cluster") in output
    if "baseline" not in script:  # the paper's runs keep the paper's interleaving (interleave=paper)
        per_gpu = 128 // (16 if cluster else 8)
        assert ("supervised        update 1          128 new demonstrations + 0 own responses (weight 1) + 0 taught "
                f"demonstrations = {per_gpu} per GPU, micro-batches by tokens (dynamic batching), lr 1e-06\n") in output
    assert "Warning" not in output and "Traceback" not in output
    # The checkpoint plan (6 steps: one save, at the last) and room for it on this disk (the tiny model: ~1 MB).
    assert "checkpoints       every 20 steps and the last, the 2 newest kept (trainer.save_freq=20, " in output
    [size] = [line for line in output.splitlines() if line.startswith("  one checkpoint    ")]
    assert ("supervised optimizer" in size) == ("rl-baseline" not in script), size
    assert f"per rank x {16 if cluster else 8}" in size
    assert re.search(r"\n  disk              [\d.]+ [kM]B at most \(1 checkpoint\(s\) of .*\), .* free in ", output)


def test_dry_run_refuses_a_missing_model(dry_runs):
    result = dry_runs["missing model"]
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "actor_rollout_ref.model.path=/nonexistent/model: no Hugging Face model there" in output


def test_two_nodes_needs_the_cluster_address(inputs):
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    result = subprocess.run(["bash", os.path.join(REPO, "examples", "qwen2.5-math-7b-two-nodes.sh")],
                            capture_output=True, text=True, env={**env, **inputs, "DRY_RUN": "1"}, timeout=120)
    assert result.returncode != 0
    assert "set RAY_ADDRESS to address:port of the Ray head" in result.stderr


def test_sft_baseline_dry_run(dry_runs):
    """The SFT-only example: the paper's 3 epochs at LUFFY's batch 64 and lr 5e-5 over 8 GPUs, every row
    within 16,384 tokens; the model's context is checked (the tiny model's own 2,048 is refused)."""
    result = dry_runs["sft"]
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "8 rank(s), batch 64 (8 per rank), 4 steps per epoch, 12 steps (3 epochs)" in output
    assert "lr 5e-05, cosine schedule, 1 warm-up steps; saves: after_each_epoch and the last step" in output
    assert "[sft_baseline] dry run: configuration and data valid; nothing started" in output
    assert "Warning" not in output and "Traceback" not in output

    short = dry_runs["sft short context"]
    assert short.returncode != 0
    assert "--max-length 16384 is over the model's max_position_embeddings 2048" in short.stderr


def test_sft_rl_baseline_dry_run(dry_runs):
    """SFT->RL: the SFT-only stage's plan, then the RL-only stage's on the same data (checked on the base model,
    as the SFT model does not exist yet)."""
    result = dry_runs["sft rl"]
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "12 steps (3 epochs)" in output and "[sft_baseline] dry run: configuration and data valid" in output
    assert "supervised        off (relift.enable=false)" in output
    assert "[relift] dry run: configuration and data valid; nothing started" in output
    assert "Warning" not in output and "Traceback" not in output
