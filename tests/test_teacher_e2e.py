"""End to end on CPU: a training file without any demonstration, a teacher on 127.0.0.1 that knows the
worked solutions (half of them slowly), ReLIFT asking it in the background, a checkpoint with requests
still pending, and a resume that asks those again."""

import json
import os
import re

import numpy as np
import pandas as pd
import pytest
from helpers import SECRET, Server, cpu_overrides, run_main

from relift.toy.runs import read_metrics

pytestmark = pytest.mark.e2e


def overrides(tiny, out: str, steps: int, train: str) -> list[str]:
    return [o if not o.startswith("data.train_files=") else f"data.train_files={train}"
            for o in cpu_overrides(tiny, out, steps)]


def test_questions_without_demonstrations_get_taught_and_pending_ones_survive_a_resume(tiny, tmp_path, monkeypatch):
    frame = pd.read_parquet(tiny["train"])
    questions = [prompt[-1]["content"] for prompt in frame.prompt]
    answers = {q: target[0]["content"] for q, target in zip(questions, frame.target, strict=True)}
    # Half the questions are answered after a minute the first time they are asked (still pending when
    # step 2 is saved), at once the second time; the other half at once.
    slow = set(questions[::2])
    server = Server(tmp_path, answers, {q: ["slow:60", "ok"] for q in slow})
    bare = str(tmp_path / "no_demonstrations.parquet")
    frame.assign(target=None).to_parquet(bare)

    monkeypatch.setenv("RELIFT_TEST_KEY", SECRET)
    out = str(tmp_path / "run")
    os.makedirs(out)
    common = [
        "relift.sft_trigger_size=4",
        "relift.sft_micro_batch_size_per_gpu=2",
        "relift.teacher.enable=true",
        f"relift.teacher.base_url={server.url}",
        "relift.teacher.model=teacher-7b",
        "relift.teacher.api_key_env=RELIFT_TEST_KEY",
        "relift.teacher.backoff_s=0.1",
        "trainer.save_freq=2",
    ]
    try:
        text = run_main(overrides(tiny, out, 2, bare) + common, f"{out}/metrics.jsonl", f"{out}/run1.log")
        rows = read_metrics(f"{out}/metrics.jsonl")
        assert rows[0]["relift/hardest_without_demo"] == rows[0]["relift/hardest_in_batch"] > 0
        assert rows[0]["teacher/asked"] == rows[0]["relift/hardest_in_batch"]
        assert rows[-1]["teacher/verified_total"] > 0 and rows[-1]["teacher/failures"] == 0
        assert rows[-1]["relift/sft_updates_total"] >= 1, "the teacher's demonstrations were not trained on"
        assert rows[-1]["teacher/completion_tokens_total"] > 0 and np.isfinite(rows[-1]["teacher/latency_s"])
        # The console line (step 1's: Ray may drop the task runner's last lines when the run ends).
        line = text.split("[relift] step    1")[1].splitlines()[0]
        assert re.search(r"\| teacher \d+/\d+ verified, \d+ pending$", line)

        with open(f"{out}/checkpoints/global_step_2/relift_state.json") as f:
            pending = json.load(f)["teacher"]["pending"]
        assert pending, "no request was pending at the checkpoint"
        # Slow ones asked at step 1, and those asked at step 2 (answered or not: they are collected at the
        # next step). On resume the answered ones come from the cache, the others are asked again.
        assert {info["messages"][-1]["content"] for info in pending.values()} & slow

        text = run_main(overrides(tiny, out, 3, bare) + common, f"{out}/metrics-resume.jsonl", f"{out}/run2.log")
        assert f"[relift] asked the teacher again for {len(pending)} pending questions" in text
        rows = read_metrics(f"{out}/metrics-resume.jsonl")
        assert sum(r["teacher/verified"] for r in rows) >= len(pending)
    finally:
        server.stop()

    asked = [r["question"] for r in server.requests()]
    for question in set(asked):
        # Answered ones come from the cache afterwards; a slow one is asked once more after the resume.
        assert asked.count(question) <= (2 if question in slow else 1), question
    cache = tmp_path / "run" / "checkpoints" / "teacher_cache.jsonl"
    assert sum(json.loads(line)["status"] == "verified" for line in cache.read_text().splitlines()) >= len(pending)
    for root, _, files in os.walk(tmp_path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                assert SECRET.encode() not in f.read(), os.path.join(root, name)
