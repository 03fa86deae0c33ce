"""End to end on CPU: the real trainer through veRL's RayPPOTrainer.fit(), Ray on 127.0.0.2, tiny model.

Every answer of a randomly initialised model is wrong, so every question is hardest: the buffer fills
and supervised updates run. RL then has zero advantage everywhere; with the actor's entropy bonus and
weight decay off its updates change nothing, so a parameter change is the supervised update's doing.
"""

import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import torch
from helpers import cpu_overrides, run_main
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from relift.best import validation_score
from relift.sft import anchor_weight, replay_draws
from relift.toy.runs import read_metrics

pytestmark = pytest.mark.e2e


def weights(path: str) -> dict[str, torch.Tensor]:
    return load_file(os.path.join(path, "model.safetensors"))


def test_relift_fills_buffer_runs_sft_changes_parameters_and_resumes(tiny, tmp_path):
    out = str(tmp_path)
    common = cpu_overrides(tiny, out, steps=2) + [
        "relift.sft_trigger_size=4",
        "relift.sft_micro_batch_size_per_gpu=2",
        "relift.max_target_len=8",  # synthetic demonstrations are ~20 tokens: every one is truncated
        "actor_rollout_ref.actor.entropy_coeff=0",
        "actor_rollout_ref.actor.optim.weight_decay=0",
        "trainer.save_freq=1",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
    ]
    text = run_main(common, f"{out}/metrics.jsonl", f"{out}/run1.log")
    rows = read_metrics(f"{out}/metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["relift/hardest_in_batch"] == rows[0]["relift/solve_none_frac"] * 8 > 0
    assert rows[-1]["relift/hardest_seen_total"] >= 8
    assert rows[-1]["relift/sft_updates_total"] >= 2
    assert all(np.isfinite(r["relift/sft_loss"]) for r in rows if r["relift/sft_updates"])
    assert rows[-1]["relift/demos_truncated"] == 4 * rows[-1]["relift/sft_updates_total"]
    assert rows[0]["relift/demos_used_frac"] > 0
    assert rows[0]["critic/score/mean"] == 0.0 and rows[0]["actor/pg_loss"] == 0.0
    assert "[relift] step    1" in text
    # The closing block comes from the driver, not from Ray's log streaming, which may drop it.
    assert "\n[relift] compute for this run (relift, 2 steps)\n  wall time" in text
    # A normal run's log: no traceback, none of the warnings relift knows to be harmless on CPU.
    for noise in ["Traceback", "KeyError", "NUMA affinity", "RayPPOTrainer' is deprecated", "'set_vital' is deprecated",
                  "engine is not available", "is_fx_tracing"]:
        assert noise not in text, noise

    # The supervised update moved the weights (RL had nothing to learn from).
    initial = weights(tiny["model"])
    trained = weights(f"{out}/checkpoints/global_step_2/actor/huggingface")
    changed = [name for name in initial if not torch.equal(initial[name], trained[name])]
    assert changed, "no parameter changed"

    # Checkpoints carry the buffer, the counters and the supervised optimizer's state.
    step_dir = f"{out}/checkpoints/global_step_2"
    assert os.path.exists(f"{step_dir}/relift_state.json")
    # ReLIFT's state is on disk before veRL marks the checkpoint as the latest.
    tracker = f"{out}/checkpoints/latest_checkpointed_iteration.txt"
    assert os.stat(f"{step_dir}/relift_state.json").st_mtime_ns <= os.stat(tracker).st_mtime_ns
    assert os.path.exists(f"{step_dir}/actor/relift_sft_optimizer_rank0.pt")
    assert torch.load(f"{step_dir}/actor/relift_sft_optimizer_rank0.pt", weights_only=False)["state"]

    # Resume: one more step picks up where step 2 left off.
    buffered = rows[-1]["relift/buffer_size"]
    resumed = cpu_overrides(tiny, out, steps=3) + common[len(cpu_overrides(tiny, out, steps=2)):]
    text = run_main(resumed, f"{out}/metrics-resume.jsonl", f"{out}/run2.log")
    assert f"[relift] resumed buffer of {int(buffered)} questions" in text
    rows = read_metrics(f"{out}/metrics-resume.jsonl")
    assert [r["step"] for r in rows] == [3]
    assert rows[0]["relift/hardest_seen_total"] > 16

    # A latest checkpoint without ReLIFT's state (what a kill between veRL's marker and the state file
    # left before the state-first save) is refused before Ray starts, not resumed with an empty buffer.
    os.remove(f"{out}/checkpoints/global_step_3/relift_state.json")
    refused = subprocess.run([sys.executable, "-m", "relift.main", *cpu_overrides(tiny, out, steps=4)],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert "global_step_3/relift_state.json is missing" in refused.stdout + refused.stderr
    assert "relift.resume_without_state=true" in refused.stdout + refused.stderr


def test_relift_off_is_exactly_verls_grpo(tiny, tmp_path):
    """relift.enable=false through ReLIFTTrainer gives the metrics of veRL's own RayPPOTrainer."""
    import ray
    from hydra import compose, initialize_config_module

    from relift import cpu

    overrides = cpu_overrides(tiny, str(tmp_path), steps=2) + [
        f"actor_rollout_ref.model.path={tiny['warm_model']}",  # solves some questions: non-zero advantages
        "relift.enable=false",
        "trainer.save_freq=-1",
    ]
    with initialize_config_module(config_module="relift.config", version_base=None):
        config = compose(config_name="relift_trainer", overrides=overrides)
    metrics = {}
    for name, trainer_cls in [("relift", "relift.trainer.ReLIFTTrainer"),
                              ("verl", "verl.trainer.ppo.ray_trainer.RayPPOTrainer")]:
        cpu.start_ray(config)  # a fresh Ray per run: nothing of the first run can leak into the second
        from relift.task_runner import ReLIFTTaskRunner  # after cpu.start_ray: veRL resolves its platform on import

        path = str(tmp_path / f"{name}.jsonl")
        try:
            runner = ReLIFTTaskRunner.options(runtime_env={"env_vars": {"VERL_FILE_LOGGER_PATH": path}}).remote()
            ray.get(runner.run.remote(config, trainer_cls))
        finally:
            ray.shutdown()
        metrics[name] = read_metrics(path)

    relift, verl = metrics["relift"], metrics["verl"]
    assert len(relift) == len(verl) == 2
    assert not any(key.startswith("relift/") for row in relift for key in row)
    assert any(row["critic/score/mean"] > 0 for row in relift), "no reward at all: the comparison would be vacuous"
    # What was sampled and scored must match exactly. Float reductions (losses, entropy, norms) may not:
    # responses to the same prompt can arrive at the rollout in another order, and that rounding grows
    # through a step's update into the next (measured up to 2.4e-3 relative on entropy, 2e-3 on the
    # gradient norm), so they are compared within 2e-2.
    exact = ["critic/score/mean", "response_length/mean", "critic/advantages/mean", "critic/advantages/max"]
    reduced = ["actor/pg_loss", "actor/entropy", "actor/entropy_loss", "actor/grad_norm"]
    for ours, theirs in zip(relift, verl, strict=True):
        for key in exact:
            assert ours[key] == pytest.approx(theirs[key], abs=1e-6), key
        for key in reduced:
            assert ours[key] == pytest.approx(theirs[key], rel=2e-2, abs=1e-6), key


def one_supervised_step(tiny, out: str, *overrides: str) -> tuple[float, dict[str, torch.Tensor]]:
    """One step whose only weight change is one supervised update on all 8 (distinct) questions of the first
    batch: the same supervised batch whatever the row order. Returns (logged NLL, trained weights)."""
    os.makedirs(out)
    run_main(cpu_overrides(tiny, out, steps=1) + [
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
        "relift.sft_trigger_size=8",
        "relift.sft_micro_batch_size_per_gpu=2",
        "relift.max_target_len=24",
        "actor_rollout_ref.actor.entropy_coeff=0",
        "actor_rollout_ref.actor.optim.weight_decay=0",
        "relift.entropy_coeff=0",
        "trainer.save_freq=1",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,extra,hf_model]",
        *overrides,
    ], f"{out}/metrics.jsonl", f"{out}/run.log")
    row = read_metrics(f"{out}/metrics.jsonl")[0]
    assert row["relift/sft_updates"] == 1
    return row["relift/sft_loss"], weights(f"{out}/checkpoints/global_step_1/actor/huggingface")


@pytest.fixture(scope="module")
def reference_step(tiny, tmp_path_factory):
    """1 rank, padded batches, fixed micro-batches of 2: the CPU overlay's settings."""
    return one_supervised_step(tiny, str(tmp_path_factory.mktemp("reference") / "run"))


GPU_SETTINGS = {
    # The loss is the global token mean (the reference scaled it by 1/world_size).
    "two_ranks": ["trainer.n_gpus_per_node=2"],
    # The GPU defaults: micro-batches cut by tokens and packed sequences without padding (sdpa masks them
    # by position ids on CPU). A sequence here is ~60 prompt + 24 response tokens: 2 per micro-batch.
    "dynamic_bsz_remove_padding": [
        "actor_rollout_ref.actor.use_dynamic_bsz=true",
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=192",
        "relift.sft_micro_batch_size_per_gpu=null",
        "actor_rollout_ref.model.use_remove_padding=true",
    ],
}


@pytest.mark.parametrize("setting", GPU_SETTINGS)
def test_gpu_settings_give_the_same_supervised_update(setting, tiny, tmp_path, reference_step):
    """One supervised step under a GPU setting gives the reference's NLL and weights."""
    nll, trained = one_supervised_step(tiny, str(tmp_path / setting), *GPU_SETTINGS[setting])
    reference_nll, reference = reference_step
    assert nll == pytest.approx(reference_nll, rel=1e-3)
    initial = weights(tiny["model"])
    for name, value in trained.items():
        assert not torch.equal(value, initial[name]) or name.endswith("norm.weight")
        assert torch.allclose(value, reference[name], rtol=1e-4, atol=1e-6), name


def test_a_step_whose_grading_failed_everywhere_stops_the_run(tiny, tmp_path):
    """No grader process can run (here: none allowed): every answer would score 0 and every question look
    hardest. The run stops at the first step instead of training on that."""
    out = str(tmp_path)
    env = {**os.environ, "RELIFT_GRADER_PROCESSES": "0"}
    with open(f"{out}/run.log", "w") as log:
        result = subprocess.run(
            [sys.executable, "-m", "relift.main", *cpu_overrides(tiny, out, steps=2),
             f"actor_rollout_ref.model.path={tiny['warm_model']}", "trainer.save_freq=-1"],
            stdout=log, stderr=subprocess.STDOUT, env=env, timeout=900,
        )
    text = open(f"{out}/run.log").read()
    assert result.returncode != 0
    assert "[relift] step 1: grading failed for all " in text, text[-3000:]
    assert "[relift] grader process failed: RELIFT_GRADER_PROCESSES=0" in text
    assert "[relift] step    1 |" not in text


def test_kill_9_of_a_training_leaves_no_process_behind(tiny, tmp_path):
    """kill -9 of a CPU training's process group mid-run: Ray's processes, the workers and the grader
    processes of the reward workers all end."""
    out = str(tmp_path)
    log_path = f"{out}/run.log"
    with open(log_path, "w") as log:
        driver = subprocess.Popen(
            [sys.executable, "-m", "relift.main", *cpu_overrides(tiny, out, steps=8),
             f"actor_rollout_ref.model.path={tiny['warm_model']}", "trainer.save_freq=-1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        while "[relift] step    2 |" not in open(log_path).read():  # answers with </think> were graded
            assert driver.poll() is None and time.monotonic() < deadline, open(log_path).read()[-3000:]
            time.sleep(0.5)
        tree = [psutil.Process(driver.pid), *psutil.Process(driver.pid).children(recursive=True)]
        graders = [p for p in tree if p.cmdline()[-2:] == ["-m", "relift.grader"]]
        assert graders, "no grader process was running: the test would not show that they end"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    _, alive = psutil.wait_procs(tree, timeout=60)
    assert alive == [], [(p.pid, p.cmdline()[:3]) for p in alive]


def test_best_validation_model_is_kept_in_hugging_face_format(tiny, tmp_path):
    out = str(tmp_path)
    run_main(cpu_overrides(tiny, out, steps=2) + [
        f"actor_rollout_ref.model.path={tiny['warm_model']}", "trainer.test_freq=1", "trainer.save_freq=-1",
    ], f"{out}/metrics.jsonl", f"{out}/run.log")
    scores = {row["step"]: validation_score(row) for row in read_metrics(f"{out}/metrics.jsonl")}
    assert sorted(scores) == [1, 2]
    best_step = max(scores, key=lambda step: (scores[step], -step))  # the first of equal scores
    best = f"{out}/checkpoints/best"
    assert os.readlink(best) == f"best_step_{best_step}"
    info = json.load(open(f"{best}/relift_best.json"))
    assert info["step"] == best_step and info["score"] == pytest.approx(scores[best_step])
    assert [os.path.basename(p) for p in glob.glob(f"{out}/checkpoints/*best*")] == ["best", f"best_step_{best_step}"]
    model = AutoModelForCausalLM.from_pretrained(best)
    tokenizer = AutoTokenizer.from_pretrained(best)
    assert model.config.vocab_size >= len(tokenizer)


@contextlib.contextmanager
def read_only(path: str):
    """The folder becomes read-only: a read-only bind mount for root (whom permissions do not stop), else
    its write permission removed."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", path, path], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", path], check=True)
            yield
        finally:
            subprocess.run(["umount", path], check=True)
    else:
        os.chmod(path, 0o555)
        try:
            yield
        finally:
            os.chmod(path, 0o755)


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("mount") is None, reason="needs mount(8) as root")
def test_a_save_into_a_read_only_folder_fails_clearly_and_keeps_the_previous_checkpoint(tiny, tmp_path):
    out = str(tmp_path)
    checkpoints = f"{out}/checkpoints"
    common = ["trainer.save_freq=1", "relift.sft_trigger_size=4", "relift.sft_micro_batch_size_per_gpu=2"]
    with open(f"{out}/run.log", "w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "relift.main", *cpu_overrides(tiny, out, steps=3), *common],
                                  stdout=log, stderr=subprocess.STDOUT)
    tracker = f"{checkpoints}/latest_checkpointed_iteration.txt"
    deadline = time.monotonic() + 600
    while not (os.path.exists(tracker) and open(tracker).read() == "1"):
        assert driver.poll() is None and time.monotonic() < deadline, open(f"{out}/run.log").read()[-3000:]
        time.sleep(0.1)
    with read_only(checkpoints):
        assert driver.wait(timeout=600) != 0
    text = open(f"{out}/run.log").read()
    assert "[relift] saving the checkpoint of step 2 to" in text, text[-3000:]
    assert "Read-only file system" in text or "Permission denied" in text
    assert "global_step_1 is still the latest checkpoint and intact" in text

    # The previous checkpoint loads: step 2 is trained again from it.
    text = run_main(cpu_overrides(tiny, out, steps=2) + common, f"{out}/metrics.jsonl", f"{out}/resume.log")
    assert "[relift] resumed buffer of" in text
    assert [row["step"] for row in read_metrics(f"{out}/metrics.jsonl")] == [2]


def test_stabilizers_run_through_the_trainer_and_resume(tiny, tmp_path):
    """Replay and its anchor weight, lr warm-up, the trust-region loss, the guard and the update-size log in the
    real trainer, on the warm-started model (it solves copy questions: the replay pool fills), and their state
    across a resume."""
    out = str(tmp_path)
    common = [
        f"actor_rollout_ref.model.path={tiny['warm_model']}",
        "data.max_response_length=40",  # a correct response ends with EOS within it: only those are replayed
        "relift.sft_trigger_size=4",
        "relift.sft_micro_batch_size_per_gpu=2",
        "relift.replay.share=0.5",  # 8 own responses and 4 taught demonstrations per update of 4 new ones
        "relift.replay.taught_share=0.25",
        "relift.replay.taught_warmup_updates=4",  # 1, 2, 3 then 4 taught demonstrations per update
        "relift.replay.anchor_weight=4",  # own responses weigh 4, 2.5 then 1
        "relift.replay.anchor_decay_updates=2",
        "relift.optim.warmup_updates=2",
        "relift.sft_loss.weighting=trust_region",
        "relift.guard.max_rise=0.5",
        "relift.log_update_size=true",
        "trainer.save_freq=2",
    ]
    run_main(cpu_overrides(tiny, out, steps=2) + common, f"{out}/metrics.jsonl", f"{out}/run1.log")
    rows = read_metrics(f"{out}/metrics.jsonl")
    updates = [r for r in rows if r["relift/sft_updates"]]
    assert updates, "no supervised update ran"
    lr = 1e-4  # the CPU overlay's supervised lr
    assert [r["relift/sft_lr"] for r in updates] == pytest.approx(
        [lr * min(1.0, r["relift/sft_updates_total"] / 2) for r in updates])  # one update per step at most
    assert rows[0]["relift/replay_pool"] > 0
    replayed = [r["relift/sft_replayed"] for r in updates]
    assert any(replayed) and all(n % 2 == 0 and n <= 12 for n in replayed), replayed  # whole micro-batches of 2
    assert all(r["relift/sft_micro_batch"] == 2 for r in updates)
    # The taught pool holds 4 per earlier update: without the warm-up the second update would replay 4.
    assert all(r["relift/sft_replayed_taught"] <= replay_draws(8, 4, r["relift/sft_updates_total"] - 1, 4, 1)[1]
               for r in updates), [r["relift/sft_replayed_taught"] for r in updates]
    assert [r["relift/sft_anchor_weight"] for r in updates] == pytest.approx(
        [anchor_weight(r["relift/sft_updates_total"] - 1, 4.0, 2) for r in updates])
    assert rows[-1]["relift/taught_pool"] == 4 * rows[-1]["relift/sft_updates_total"]  # every demonstration fits
    assert all(0 < r["relift/sft_update_size"] < 0.1 for r in updates)
    assert all(0 < r["actor/update_size"] < 0.1 for r in rows)
    state = json.load(open(f"{out}/checkpoints/global_step_2/relift_state.json"))
    assert len(state["replay"]["items"]) == rows[-1]["relift/replay_pool"] and len(state["guard"]["recent"]) == 2
    assert len(state["taught"]["items"]) == rows[-1]["relift/taught_pool"]

    text = run_main(cpu_overrides(tiny, out, steps=3) + common, f"{out}/metrics-resume.jsonl", f"{out}/run2.log")
    assert f"replay pool of {int(rows[-1]['relift/replay_pool'])} responses" in text
    resumed = read_metrics(f"{out}/metrics-resume.jsonl")
    assert resumed[0]["relift/replay_pool"] >= rows[-1]["relift/replay_pool"]
