"""End to end on CPU: the real trainer through veRL's RayPPOTrainer.fit(), Ray on 127.0.0.2, tiny models.

The rules of the ReLIFT step are unit-tested in test_interleave.py; here, that the trainer wires them to
veRL. One warm-started run with every stabilizer, checkpoints, the best model and a teacher for the rows
without a demonstration, and one resume of it, carry most assertions (`run`); the others need a run of
their own: veRL's GRPO compared with relift off, supervised updates under GPU settings, a grading
failure, a failed save then a kill -9.
"""

import contextlib
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
from helpers import SECRET, Server, composed, cpu_overrides, run_main
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from relift.best import validation_score
from relift.checkpoints import TRACKER_FILE
from relift.checks import supervised_settings
from relift.sft import build_sft_batch, sft_loss
from relift.sft_plan import anchor_weight, plan_update, replay_draws
from relift.toy.runs import read_metrics

pytestmark = pytest.mark.e2e


def weights(path: str) -> dict[str, torch.Tensor]:
    return load_file(os.path.join(path, "model.safetensors"))


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
    """Two steps on the warm-started model (it solves copy questions: the replay pool fills; it never solves
    inc or dbl: the buffer fills), a checkpoint and a validation at every step, then a resume to step 3.
    Every other training row has no demonstration: a teacher on 127.0.0.1 knows the worked solutions, and
    answers half of its questions after a minute the first time they are asked (still pending when step 2
    is saved), at once the second time."""
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
              "trainer.save_freq=1", "trainer.test_freq=1",
              "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
              "relift.teacher.enable=true", f"relift.teacher.base_url={server.url}", "relift.teacher.model=teacher-7b",
              "relift.teacher.api_key_env=RELIFT_TEST_KEY", "relift.teacher.backoff_s=0.1"]
    checkpoints = f"{out}/checkpoints"
    state = f"{checkpoints}/global_step_2/relift_state.json"
    try:
        log = run_main(cpu_overrides(tiny, out, steps=2) + common, f"{out}/metrics.jsonl", f"{out}/run1.log",
                       RELIFT_TEST_KEY=SECRET)
        # What the resume rewrites: the tracker, and the best model when step 3 validates better.
        written_in_order = os.stat(state).st_mtime_ns <= os.stat(f"{checkpoints}/{TRACKER_FILE}").st_mtime_ns
        best = SimpleNamespace(
            link=os.readlink(f"{checkpoints}/best"), info=json.load(open(f"{checkpoints}/best/relift_best.json")),
            files=sorted(os.path.basename(p) for p in glob.glob(f"{checkpoints}/*best*")),
            vocab_size=AutoModelForCausalLM.from_pretrained(f"{checkpoints}/best").config.vocab_size,
            tokens=len(AutoTokenizer.from_pretrained(f"{checkpoints}/best")),
        )
        state_at_2 = json.load(open(state))
        resumed_log = run_main(cpu_overrides(tiny, out, steps=3) + common, f"{out}/metrics-resume.jsonl",
                               f"{out}/run2.log", RELIFT_TEST_KEY=SECRET)
    finally:
        server.stop()
    return SimpleNamespace(
        out=out, checkpoints=checkpoints, log=log, rows=read_metrics(f"{out}/metrics.jsonl"), state=state_at_2,
        written_in_order=written_in_order, best=best, resumed_log=resumed_log,
        resumed=read_metrics(f"{out}/metrics-resume.jsonl"), bare=set(bare), slow=slow,
        asked=[request["question"] for request in server.requests()],
    )


def test_relift_buffers_the_hardest_questions_and_trains_them(run):
    rows = run.rows
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["relift/hardest_in_batch"] == rows[0]["relift/solve_none_frac"] * 8 > 0
    assert rows[-1]["relift/hardest_seen_total"] == sum(r["relift/hardest_in_batch"] for r in rows)
    updates = [r for r in rows if r["relift/sft_updates"]]
    assert updates and all(np.isfinite(r["relift/sft_nll"]) and r["relift/sft_nll"] > 0 for r in updates)
    assert rows[-1]["relift/demos_used"] == 4 * rows[-1]["relift/sft_updates_total"]
    assert rows[-1]["relift/demos_used_frac"] == rows[-1]["relift/demos_used"] / 64
    assert rows[-1]["relift/demos_truncated"] == 0  # a demonstration is 25 tokens with its EOS, within 40
    assert "[relift] step    1 | reward " in run.log
    # The closing block comes from the driver, not from Ray's log streaming, which may drop it.
    assert "\n[relift] compute for this run (relift, 2 steps)\n  wall time" in run.log
    # A normal run's log: no traceback, none of the warnings relift knows to be harmless on CPU.
    for noise in ["Traceback", "KeyError", "NUMA affinity", "RayPPOTrainer' is deprecated", "'set_vital' is deprecated",
                  "engine is not available", "is_fx_tracing"]:
        assert noise not in run.log + run.resumed_log, noise


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


def test_a_resume_picks_up_the_buffer_pools_and_counters(run):
    assert f"[relift] resumed buffer of {int(run.rows[-1]['relift/buffer_size'])} questions" in run.resumed_log
    assert f"replay pool of {int(run.rows[-1]['relift/replay_pool'])} responses" in run.resumed_log
    [row] = run.resumed
    assert row["step"] == 3
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
    for question in set(run.asked):
        assert question in run.bare and run.asked.count(question) <= (2 if question in run.slow else 1), question
    cache = [json.loads(line) for line in open(f"{run.checkpoints}/teacher_cache.jsonl")]
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


def test_a_latest_checkpoint_without_relifts_state_is_refused_before_ray(run, tiny, tmp_path):
    """A checkpoint whose relift_state.json is gone (a run with relift.enable=false writes none)."""
    from relift.main import run as main

    out = str(tmp_path)
    shutil.copytree(run.checkpoints, f"{out}/checkpoints", symlinks=True)
    os.remove(f"{out}/checkpoints/global_step_3/relift_state.json")
    with pytest.raises(SystemExit) as refused:
        main(composed(*cpu_overrides(tiny, out, steps=4)))
    assert "global_step_3/relift_state.json is missing" in str(refused.value)
    assert "relift.resume_without_state=true" in str(refused.value)


def test_relift_off_is_exactly_verls_grpo(tiny, tmp_path):
    """relift.enable=false through ReLIFTTrainer gives the metrics of veRL's own RayPPOTrainer."""
    import ray

    from relift import cpu

    config = composed(*cpu_overrides(tiny, str(tmp_path), steps=2),
                      f"actor_rollout_ref.model.path={tiny['warm_model']}",  # solves some: non-zero advantages
                      "relift.enable=false", "trainer.save_freq=-1")
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


def one_supervised_step(tiny, out: str, *overrides: str) -> SimpleNamespace:
    """One step on the random model, whose only weight change is one supervised update on all 8 (distinct)
    questions of the first batch: every answer is wrong, so RL has zero advantage everywhere, and with the
    actor's entropy bonus and weight decay off its update changes nothing. Returns the logged NLL, the
    trained weights and the update's batch as the taught pool saved it (every demonstration fits)."""
    os.makedirs(out)
    config = [
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
        "relift.sft_trigger_size=8",
        "relift.sft_micro_batch_size_per_gpu=2",
        "relift.max_target_len=40",
        "actor_rollout_ref.actor.entropy_coeff=0",
        "actor_rollout_ref.actor.optim.weight_decay=0",
        "relift.entropy_coeff=0",
        "trainer.save_freq=1",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,extra,hf_model]",
        *overrides,
    ]
    run_main(cpu_overrides(tiny, out, steps=1) + config, f"{out}/metrics.jsonl", f"{out}/run.log")
    row = read_metrics(f"{out}/metrics.jsonl")[0]
    assert row["relift/sft_updates"] == 1 and row["relift/sft_replayed_own"] == row["relift/sft_replayed_taught"] == 0
    assert row["critic/score/mean"] == 0.0 and row["actor/pg_loss"] == 0.0  # RL had nothing to learn from
    state = json.load(open(f"{out}/checkpoints/global_step_1/relift_state.json"))
    batch = [(item["prompt_ids"], item["response_ids"]) for item in state["taught"]["items"]]
    assert len(batch) == 8
    trained = weights(f"{out}/checkpoints/global_step_1/actor/huggingface")
    return SimpleNamespace(nll=row["relift/sft_nll"], weights=trained, batch=batch,
                           config=composed(*cpu_overrides(tiny, out, steps=1), *config))


def supervised_step_by_hand(model_path: str, batch: list, config) -> tuple[float, dict[str, torch.Tensor]]:
    """The first supervised update as documented, in plain transformers and torch: relift.sft's layout and
    token-mean NLL over the whole batch, the gradient clipped to relift.optim.grad_clip, one AdamW step at
    the plan's first lr (relift.sft_plan). Returns (NLL, weights)."""
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, attn_implementation="sdpa")
    tensors = build_sft_batch([p for p, _ in batch], [r for _, r in batch], eos_token_id=model.config.eos_token_id,
                              pad_token_id=model.config.pad_token_id,
                              max_target_len=config.relift.max_target_len).tensors
    logits = model(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"],
                   position_ids=tensors["position_ids"]).logits
    prompt_length = tensors["prompts"].shape[1]
    log_probs = logits[:, prompt_length - 1 : -1].log_softmax(-1)
    log_probs = log_probs.gather(-1, tensors["responses"][..., None]).squeeze(-1)
    mask = tensors["response_mask"]
    loss, nll = sft_loss(log_probs, None, mask, global_num_tokens=float(mask.sum()), dp_size=1, entropy_coeff=0.0)
    loss.backward()
    optim = config.relift.optim
    torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
    lr = plan_update(supervised_settings(config), 0, 0, 0).lr
    torch.optim.AdamW(model.parameters(), lr=lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay).step()
    return float(nll), {name: value.detach() for name, value in model.state_dict().items()}


GPU_SETTINGS = {
    # The CPU overlay's padded batches and fixed micro-batches of 2, over 2 ranks: the loss is the global
    # token mean (the reference scaled it by 1/world_size).
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
def test_a_supervised_update_under_gpu_settings_is_the_documented_one(setting, tiny, tmp_path):
    """One supervised step under a GPU setting gives the NLL and weights of the same update computed by hand,
    and moved every weight but the norms'."""
    step = one_supervised_step(tiny, str(tmp_path / setting), *GPU_SETTINGS[setting])
    nll, expected = supervised_step_by_hand(tiny["model"], step.batch, step.config)
    assert step.nll == pytest.approx(nll, rel=1e-3)
    initial = weights(tiny["model"])
    for name, value in step.weights.items():
        assert not torch.equal(value, initial[name]) or name.endswith("norm.weight")
        assert torch.allclose(value, expected[name], rtol=1e-4, atol=1e-6), name


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


def wait_for(condition, process: subprocess.Popen, log_path: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None and time.monotonic() < deadline, open(log_path).read()[-3000:]
        time.sleep(0.1)


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("mount") is None, reason="needs mount(8) as root")
def test_a_failed_save_keeps_the_previous_checkpoint_and_a_kill_9_of_its_resume_leaves_no_process(tiny, tmp_path):
    """A save into a read-only folder stops the run in one clear line and leaves the previous checkpoint the
    latest; the resume from it trains step 2 again, and kill -9 of that training's process group mid-run
    ends Ray's processes, the workers and the grader processes of the reward workers."""
    out = str(tmp_path)
    checkpoints = f"{out}/checkpoints"
    common = [f"actor_rollout_ref.model.path={tiny['warm_model']}", "trainer.save_freq=1",
              "relift.sft_trigger_size=4", "relift.sft_micro_batch_size_per_gpu=2"]
    with open(f"{out}/run.log", "w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "relift.main", *cpu_overrides(tiny, out, steps=3), *common],
                                  stdout=log, stderr=subprocess.STDOUT)
    tracker = f"{checkpoints}/latest_checkpointed_iteration.txt"
    wait_for(lambda: os.path.exists(tracker) and open(tracker).read() == "1", driver, f"{out}/run.log")
    with read_only(checkpoints):
        assert driver.wait(timeout=600) != 0
    text = open(f"{out}/run.log").read()
    assert "[relift] saving the checkpoint of step 2 to" in text, text[-3000:]
    assert "Read-only file system" in text or "Permission denied" in text
    assert "global_step_1 is still the latest checkpoint and intact" in text

    log_path = f"{out}/resume.log"
    with open(log_path, "w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "relift.main", *cpu_overrides(tiny, out, steps=8), *common],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "[relift] step    2 |" in open(log_path).read(), driver, log_path)  # answers were graded
        assert "[relift] resumed buffer of" in open(log_path).read()  # from step 1: step 2 is trained again
        tree = [psutil.Process(driver.pid), *psutil.Process(driver.pid).children(recursive=True)]
        graders = [p for p in tree if p.cmdline()[-2:] == ["-m", "relift.grader"]]
        assert graders, "no grader process was running: the test would not show that they end"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    _, alive = psutil.wait_procs(tree, timeout=60)
    assert alive == [], [(p.pid, p.cmdline()[:3]) for p in alive]
