"""End to end on CPU: the real trainer through veRL's RayPPOTrainer.fit(), Ray on 127.0.0.2, tiny models.

The rules of the ReLIFT step are unit-tested in test_interleave.py; here, that the trainer wires them to
veRL. The life of one run with vLLM rollouts and everything on (stabilizers, checkpoints, the best model, a
teacher for the rows without a demonstration), its failed save, its resume and a kill -9 carry most
assertions (`run`); veRL's GRPO compared with relift off needs runs of its own. A supervised update under
the GPU defaults is checked on two nodes (test_two_nodes.py).
"""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
from helpers import HF_ROLLOUT, NOISE, SECRET, Server, composed, cpu_overrides
from transformers import AutoModelForCausalLM, AutoTokenizer

from relift.best import validation_score
from relift.checkpoints import TRACKER_FILE, latest_step
from relift.sft_plan import anchor_weight, replay_draws
from relift.toy.runs import read_metrics

pytestmark = pytest.mark.e2e


# The stabilizers at sizes a two-step run reaches: 4 new demonstrations, 8 own responses and 4 taught
# demonstrations per update, in micro-batches of 2.
STABILIZERS = [
    "data.max_response_length=40",  # a correct response ends with EOS within it: only those are replayed
    "relift.sft_trigger_size=4",
    "relift.sft_micro_batch_size_per_gpu=2",
    "relift.replay.share=0.5",
    "relift.replay.taught_share=0.25",
    "relift.replay.taught_warmup_updates=4",  # 1, 2, 3 then 4 taught demonstrations per update
    "relift.replay.anchor_weight=4",  # own responses weigh 4, 2.5 then 1
    "relift.replay.anchor_decay_updates=2",
    "relift.optim.warmup_updates=2",
    "relift.sft_loss.weighting=trust_region",
    "relift.guard.max_rise=0.5",
    "relift.log_update_size=true",
]


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory):
    """The life of a run, with everything on. The warm-started model solves copy questions (the replay pool
    fills) and never inc or dbl (the buffer fills); every other training row has no demonstration, and a
    teacher on 127.0.0.1 that knows the worked solutions answers half of its questions after a minute the
    first time they are asked (still pending at the checkpoint of step 2), at once the second time. The
    run checkpoints and validates at every step, and the save of step 3 fails (a file stands where its
    folder goes). The same command then resumes from step 2 on vLLM and is killed (kill -9 of its process
    group) once a step has rolled out after a supervised update; the runaway guard is off there, so the first
    step whose buffer holds M questions updates."""
    out = str(tmp_path_factory.mktemp("run"))
    frame = pd.read_parquet(tiny["train"])
    answers = {prompt[-1]["content"]: target[0]["content"] for prompt, target in zip(frame.prompt, frame.target,
                                                                                      strict=True)}
    bare = [prompt[-1]["content"] for prompt in frame.prompt[1::2]]
    slow = set(bare[::2])
    frame.loc[1::2, "target"] = None
    train = f"{out}/half_without_demonstrations.parquet"
    frame.to_parquet(train)
    server = Server(tmp_path_factory.mktemp("teacher"), answers, {q: ["slow:60", "ok"] for q in slow})
    common = [f"actor_rollout_ref.model.path={tiny['warm_model']}", f"data.train_files={train}", *STABILIZERS,
              "trainer.save_freq=1", "trainer.test_freq=1", "trainer.total_epochs=3",
              "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
              "relift.teacher.enable=true", f"relift.teacher.base_url={server.url}", "relift.teacher.model=teacher-7b",
              "relift.teacher.api_key_env=RELIFT_TEST_KEY", "relift.teacher.backoff_s=0.1",
              f"relift.teacher.cache={out}/teacher_cache.jsonl"]
    env = {**os.environ, "RELIFT_TEST_KEY": SECRET}
    checkpoints = f"{out}/checkpoints"
    obstacle = f"{checkpoints}/global_step_3"
    os.makedirs(checkpoints)
    open(obstacle, "w").close()
    try:
        with open(f"{out}/run1.log", "w") as log:  # relift's hf rollout: one vLLM start-up less; the resume has vLLM
            failed = subprocess.run([sys.executable, "-m", "relift.main", *cpu_overrides(tiny, out, steps=3), *common,
                                     HF_ROLLOUT],
                                    stdout=log, stderr=subprocess.STDOUT, timeout=900,
                                    env={**env, "VERL_FILE_LOGGER_PATH": f"{out}/metrics.jsonl"})
        state = f"{checkpoints}/global_step_2/relift_state.json"
        written_in_order = os.stat(state).st_mtime_ns <= os.stat(f"{checkpoints}/{TRACKER_FILE}").st_mtime_ns
        # What the resume rewrites: the tracker, and the best model when a later step validates better.
        best = SimpleNamespace(
            link=os.readlink(f"{checkpoints}/best"), info=json.load(open(f"{checkpoints}/best/relift_best.json")),
            files=sorted(os.path.basename(p) for p in glob.glob(f"{checkpoints}/*best*")),
            vocab_size=AutoModelForCausalLM.from_pretrained(f"{checkpoints}/best").config.vocab_size,
            tokens=len(AutoTokenizer.from_pretrained(f"{checkpoints}/best")),
        )
        state_at_2 = json.load(open(state))
        saved_at_2 = os.stat(state).st_mtime

        os.remove(obstacle)
        resumed = f"{out}/metrics-resume.jsonl"
        resume_log = f"{out}/run2.log"
        with open(resume_log, "w") as log:
            # Guard off: after step 2's few hardest questions it would hold updates back for a varying number of
            # steps (its rule: test_interleave.py), and the resume is killed once a rollout follows an update.
            guard_off = [o if not o.startswith("relift.guard.max_rise=") else "relift.guard.max_rise=null"
                         for o in common]
            command = [sys.executable, "-m", "relift.main", *cpu_overrides(tiny, out, steps=24), *guard_off]
            driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                      env={**env, "VERL_FILE_LOGGER_PATH": resumed})
        try:
            def rolled_out_after_an_update() -> bool:
                return os.path.exists(resumed) and any(r["relift/sft_updates"] for r in read_metrics(resumed)[:-1])

            wait_for(rolled_out_after_an_update, driver, resume_log)
            tree = [psutil.Process(driver.pid), *psutil.Process(driver.pid).children(recursive=True)]
            graders = [p for p in tree if command_line(p)[-2:] == ["-m", "relift.grader"]]
            engines = [p for p in tree if "vllm" in " ".join(command_line(p)).lower()]
        finally:
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        _, alive = psutil.wait_procs(tree, timeout=60)
    finally:
        server.stop()
    return SimpleNamespace(
        out=out, checkpoints=checkpoints, returncode=failed.returncode, log=open(f"{out}/run1.log").read(),
        rows=read_metrics(f"{out}/metrics.jsonl"), state=state_at_2, written_in_order=written_in_order, best=best,
        resumed_log=open(resume_log).read(), resumed=read_metrics(resumed),
        graders=graders, engines=engines, alive=alive,
        bare=set(bare), slow=slow, saved_at_2=saved_at_2,
        asked=[(request["question"], request["time"]) for request in server.requests()],
    )


def test_relift_buffers_the_hardest_questions_and_trains_them(run):
    rows = run.rows
    # The resumed run's rollouts were veRL's vLLM server's, sampling from the actor's weights of each step:
    # the weight sync (shared memory and vLLM's reload, relift.verl_ext.vllm_rollout) after RL and supervised
    # updates alike; the first run's were relift's hf server's.
    assert "CPUvLLMHttpServer" in run.resumed_log and "HFRolloutServer" in run.log
    assert any(r["relift/sft_updates"] for r in run.resumed[:-1])  # and a rollout after it
    assert all(r["training/rollout_probs_diff_mean"] < 1e-4 for r in rows + run.resumed), [
        r["training/rollout_probs_diff_mean"] for r in rows + run.resumed]
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["relift/hardest_in_batch"] == rows[0]["relift/solve_none_frac"] * 8 > 0
    assert rows[-1]["relift/hardest_seen_total"] == sum(r["relift/hardest_in_batch"] for r in rows)
    updates = [r for r in rows if r["relift/sft_updates"]]
    assert updates and all(np.isfinite(r["relift/sft_nll"]) and r["relift/sft_nll"] > 0 for r in updates)
    assert rows[-1]["relift/demos_used"] == 4 * rows[-1]["relift/sft_updates_total"]
    assert rows[-1]["relift/demos_used_frac"] == rows[-1]["relift/demos_used"] / 64
    assert rows[-1]["relift/demos_truncated"] == 0  # a demonstration is 25 tokens with its EOS, within 40
    assert "[relift] step    1 | reward " in run.log
    # The reward workers' grading flags reach the trainer (what stops a step whose grading failed everywhere).
    assert sum(r["grader/answers"] for r in rows + run.resumed) > 0
    assert all(r["grader/failures"] == 0 for r in rows + run.resumed)
    # No traceback, none of the warnings relift knows to be harmless on CPU (test_two_nodes.py checks a run
    # that ends normally).
    for noise in NOISE:
        assert noise not in run.resumed_log, noise


def test_the_stabilizers_follow_the_supervised_plan(run):
    """Replay and its anchor weight, the lr and taught-replay warm-ups and the update sizes as the trainer
    logged them, against relift.sft_plan (the rules themselves: test_sft_plan.py, test_interleave.py)."""
    rows = run.rows
    updates = [r for r in rows if r["relift/sft_updates"]]
    lr = 1e-4  # the CPU overlay's supervised lr
    assert [r["relift/sft_lr"] for r in updates] == pytest.approx(
        [lr * min(1.0, r["relift/sft_updates_total"] / 2) for r in updates])  # one update per step at most
    assert rows[0]["relift/replay_pool"] > 0
    own = [r["relift/sft_replayed_own"] for r in updates]
    taught = [r["relift/sft_replayed_taught"] for r in updates]
    assert any(own) and all((o + t) % 2 == 0 and o <= 8 for o, t in zip(own, taught, strict=True)), (own, taught)
    assert all(r["relift/sft_micro_batch"] == 2 for r in updates)
    # The taught pool holds 4 per earlier update: without the warm-up the second update would replay 4.
    assert all(r["relift/sft_replayed_taught"] <= replay_draws(8, 4, r["relift/sft_updates_total"] - 1, 4, 1)[1]
               for r in updates), taught
    assert [r["relift/sft_anchor_weight"] for r in updates] == pytest.approx(
        [anchor_weight(r["relift/sft_updates_total"] - 1, 4.0, 2) for r in updates])
    assert rows[-1]["relift/taught_pool"] == 4 * rows[-1]["relift/sft_updates_total"]  # every demonstration fits
    assert all(0 < r["relift/sft_update_size"] < 0.1 for r in updates)
    assert all(0 < r["actor/update_size"] < 0.1 for r in rows)


def test_checkpoints_carry_relifts_state_written_before_verl_marks_them(run):
    step = f"{run.checkpoints}/global_step_2"
    assert run.written_in_order  # relift_state.json is on disk before veRL's tracker names the folder
    assert run.state["counters"]["sft_updates"] == run.rows[-1]["relift/sft_updates_total"]
    assert len(run.state["buffer"]["items"]) == run.rows[-1]["relift/buffer_size"]
    assert len(run.state["replay"]["items"]) == run.rows[-1]["relift/replay_pool"]
    assert len(run.state["taught"]["items"]) == run.rows[-1]["relift/taught_pool"]
    assert len(run.state["guard"]["recent"]) == 2 and run.state["account"]["sft_updates"] >= 1
    assert torch.load(f"{step}/actor/relift_sft_optimizer_rank0.pt", weights_only=False)["state"]
    AutoModelForCausalLM.from_pretrained(f"{step}/actor/huggingface")  # hf_model in save_contents


def test_the_best_validation_model_is_kept_in_hugging_face_format(run):
    scores = {row["step"]: validation_score(row) for row in run.rows}
    assert sorted(scores) == [1, 2] and None not in scores.values()
    best_step = max(scores, key=lambda step: (scores[step], -step))  # the first of equal scores
    assert run.best.link == f"best_step_{best_step}"
    assert run.best.info["step"] == best_step and run.best.info["score"] == pytest.approx(scores[best_step])
    assert run.best.files == ["best", f"best_step_{best_step}"]
    assert run.best.vocab_size >= run.best.tokens  # the model loads with its tokenizer


def test_a_failed_save_stops_the_run_in_one_line_and_keeps_the_previous_checkpoint(run):
    assert run.returncode != 0
    last = run.log.strip().splitlines()[-1]
    assert last.startswith(f"[relift] saving the checkpoint of step 3 to {run.checkpoints}/global_step_3 failed: "), \
        run.log[-3000:]
    assert "File exists" in last and "global_step_2 is still the latest checkpoint and intact" in last
    assert [r["step"] for r in run.rows] == [1, 2]


def test_a_resume_picks_up_the_buffer_pools_and_counters(run):
    assert f"[relift] resumed buffer of {int(run.rows[-1]['relift/buffer_size'])} questions" in run.resumed_log
    assert f"replay pool of {int(run.rows[-1]['relift/replay_pool'])} responses" in run.resumed_log
    row = run.resumed[0]
    assert row["step"] == 3  # from step 2, the latest checkpoint
    before = run.rows[-1]
    assert row["relift/hardest_seen_total"] == before["relift/hardest_seen_total"] + row["relift/hardest_in_batch"]
    assert row["relift/replay_pool"] >= before["relift/replay_pool"]
    assert row["relift/sft_updates_total"] == before["relift/sft_updates_total"] + row["relift/sft_updates"]


def test_the_teacher_fills_rows_without_demonstrations_and_its_pending_questions_survive_the_resume(run, tiny):
    rows = run.rows
    assert 0 < rows[0]["relift/hardest_without_demo"] <= rows[0]["relift/hardest_in_batch"]
    assert rows[0]["teacher/asked"] == rows[0]["relift/hardest_without_demo"]
    assert rows[-1]["teacher/verified_total"] > 0 and rows[-1]["teacher/failures"] == 0
    assert rows[-1]["teacher/completion_tokens_total"] > 0
    assert all(np.isfinite(r["teacher/latency_s"]) for r in rows if r["teacher/answered"] > r["teacher/cached"])
    # The console line (step 1's: Ray may drop the task runner's last lines when the run ends).
    line = run.log.split("[relift] step    1")[1].splitlines()[0]
    assert re.search(r"\| teacher \d+/\d+ verified, \d+ pending$", line), line

    # Slow ones asked at step 1, and those asked at step 2 (answered or not: they are collected at the next
    # step), were pending at the checkpoint; on resume the answered ones come from the cache, the others
    # are asked again.
    pending = run.state["teacher"]["pending"]
    assert {info["messages"][-1]["content"] for info in pending.values()} & run.slow
    assert f"[relift] asked the teacher again for {len(pending)} pending questions" in run.resumed_log
    assert sum(r["teacher/verified"] for r in run.resumed) >= len(pending)
    # A question is asked once, and again only if it was pending: at the checkpoint (the slow ones asked at
    # step 1), or in the step the failed save lost (asked after the checkpoint of step 2).
    for question in {question for question, _ in run.asked}:
        times = [when for asked, when in run.asked if asked == question]
        lost = min(times) > run.saved_at_2
        assert question in run.bare and len(times) <= 1 + (question in run.slow) + lost, (question, times)
    cache = [json.loads(line) for line in open(f"{run.out}/teacher_cache.jsonl")]
    assert sum(entry["status"] == "verified" for entry in cache) >= len(pending)

    # The teacher's demonstrations were trained on: the taught pool holds those the updates trained.
    tokenizer = AutoTokenizer.from_pretrained(tiny["warm_model"])
    state = json.load(open(f"{run.checkpoints}/global_step_3/relift_state.json"))
    trained = [tokenizer.decode(item["prompt_ids"]) for item in state["taught"]["items"]]
    assert any(question in prompt for prompt in trained for question in run.bare)
    for root, _, files in os.walk(run.out):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                assert SECRET.encode() not in f.read(), os.path.join(root, name)


def test_the_latest_checkpoint_exports_with_verls_merger(run, tmp_path):
    """The README's export of a step: veRL's model merger turns the FSDP shards into the model that the
    checkpoint's own hf_model copy holds."""
    actor = f"{run.checkpoints}/global_step_{latest_step(run.checkpoints)}/actor"
    result = subprocess.run([sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp", "--local_dir",
                             actor, "--target_dir", str(tmp_path / "hf")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").state_dict()
    saved = AutoModelForCausalLM.from_pretrained(f"{actor}/huggingface").state_dict()
    assert merged.keys() == saved.keys() and all(torch.equal(merged[k], saved[k]) for k in saved)


def test_kill_9_of_a_training_leaves_no_process_behind(run):
    """Ray's processes, the workers, vLLM's server and engine processes and the reward workers' grader
    processes all end."""
    assert run.graders, "no grader process was running: the test would not show that they end"
    assert run.engines, "no vLLM process was running: the test would not show that they end"
    assert run.alive == [], [(p.pid, p.cmdline()[:3]) for p in run.alive]


def test_a_latest_checkpoint_without_relifts_state_is_refused_before_ray(run, tiny, tmp_path):
    """A checkpoint whose relift_state.json is gone (a run with relift.enable=false writes none)."""
    from relift.main import run as main

    out = str(tmp_path)
    shutil.copytree(run.checkpoints, f"{out}/checkpoints", symlinks=True)
    latest = latest_step(f"{out}/checkpoints")
    os.remove(f"{out}/checkpoints/global_step_{latest}/relift_state.json")
    with pytest.raises(SystemExit) as refused:
        main(composed(*cpu_overrides(tiny, out, steps=8)))
    assert f"global_step_{latest}/relift_state.json is missing" in str(refused.value)
    assert "relift.resume_without_state=true" in str(refused.value)


def test_relift_off_is_exactly_verls_grpo(tiny, tmp_path):
    """relift.enable=false through ReLIFTTrainer gives the metrics of veRL's own RayPPOTrainer."""
    import ray

    from relift import cpu

    config = composed(*cpu_overrides(tiny, str(tmp_path), steps=2),
                      f"actor_rollout_ref.model.path={tiny['warm_model']}",  # solves some: non-zero advantages
                      "relift.enable=false", "trainer.save_freq=-1", HF_ROLLOUT)
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


def test_a_step_whose_grading_failed_everywhere_stops_before_the_update():
    """The trainer's glue, on veRL's DataProto without Ray: the reward workers' flags (`relift.reward.
    compute_score`; they reach the trainer in every run, test_relift_buffers_...) say every answer sent to a
    grader process failed, so the step stops instead of training on rewards of 0 (the rule: test_interleave.py;
    a grader that cannot run reports an error: test_reward.py)."""
    from verl import DataProto

    from relift.trainer import ReLIFTTrainer

    batch = DataProto.from_dict(tensors={"response_mask": torch.ones(8, 4)},
                                non_tensors={"sent_to_grader": np.ones(8), "grader_failed": np.ones(8)})
    with pytest.raises(RuntimeError, match=r"^\[relift\] step 3: grading failed for all 8 answers sent to the grader"):
        ReLIFTTrainer._update_actor(SimpleNamespace(global_steps=3), batch)


def command_line(process: psutil.Process) -> list[str]:
    """A process's command line; empty for one that has just ended (a zombie until its parent reaps it)."""
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def wait_for(condition, process: subprocess.Popen, log_path: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None and time.monotonic() < deadline, open(log_path).read()[-3000:]
        time.sleep(0.1)
