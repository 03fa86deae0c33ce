"""relift.teacher against a real chat-completions server on 127.0.0.1 (tests/chat_server.py), through the
`openai` client: verification, retries, budget, cache, the key, and the offline path in prepare_train."""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from relift.teacher import Teacher, TeacherConfig, TeacherUnavailable, normalise, preflight

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "sk-relift-test-0123456789abcdef"


def solution(a: int, b: int) -> str:
    return f"<think>\n{a} + {b} = {a + b}\n</think>\n\nThe answer is \\boxed{{{a + b}}}."


def question(a: int, b: int) -> str:
    return f"What is {a} + {b}?"


def messages(a: int, b: int) -> list[dict]:
    return [{"role": "system", "content": "Think, then box the answer."}, {"role": "user", "content": question(a, b)}]


class Server:
    def __init__(self, tmp_path, answers: dict, actions: dict | None = None, mode: str = "script", model: str = ""):
        self.log = str(tmp_path / f"server-{time.time_ns()}.jsonl")
        files = []
        for name, content in (("answers", answers), ("actions", actions or {})):
            path = tmp_path / f"{name}-{time.time_ns()}.json"
            path.write_text(json.dumps(content))
            files += [f"--{name}", str(path)]
        command = [sys.executable, os.path.join(REPO, "tests", "chat_server.py"), "--mode", mode, "--log", self.log]
        command += files if mode == "script" else ["--model", model]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        assert line.startswith("port "), line
        self.url = f"http://127.0.0.1:{int(line.split()[1])}/v1"

    def requests(self) -> list[dict]:
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f]

    def stop(self):
        self.process.kill()
        self.process.wait()


@pytest.fixture
def server(tmp_path):
    started = []

    def start(answers, actions=None, **kwargs):
        started.append(Server(tmp_path, answers, actions, **kwargs))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def config(url: str, tmp_path, **overrides) -> TeacherConfig:
    values = dict(base_url=url, model="teacher-7b", cache=str(tmp_path / "cache.jsonl"), api_key_env="RELIFT_TEST_KEY",
                  backoff_s=0.05, timeout_s=5.0, max_retries=5, concurrency=4)
    return TeacherConfig(**{**values, **overrides})


def test_normalise_to_the_training_layout():
    assert normalise("<think>\nx\n</think>\nSo \\boxed{5}.") == "<think>\nx\n</think>\n\nSo \\boxed{5}."
    assert normalise("So 5.", reasoning="we get \\boxed{5}") == (
        "<think>\nwe get \\boxed{5}\n</think>\n\nSo 5.\n\nThe final answer is $\\boxed{5}$.")
    assert normalise("2 + 3 = \\boxed{5}") == "<think>\n2 + 3 = \\boxed{5}\n</think>\n\nThe final answer is $\\boxed{5}$."
    assert normalise("<think>\ncut short, \\boxed{5}") == "<think>\ncut short, \\boxed{5}\n</think>\n\nThe final answer is $\\boxed{5}$."
    assert normalise("no boxed answer") is None and normalise(None) is None


def test_verified_retried_unverified_failed_and_cached(server, tmp_path, monkeypatch):
    monkeypatch.setenv("RELIFT_TEST_KEY", SECRET)
    pairs = [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (1, 6), (1, 7), (1, 8)]
    actions = {
        question(1, 1): ["ok"],
        question(1, 2): ["reasoning"],
        question(1, 3): ["plain"],
        question(1, 4): ["429", "500", "malformed", "drop", "ok"],  # every retryable failure, then an answer
        question(1, 5): ["wrong"],  # both attempts graded wrong
        question(1, 6): ["wrong", "ok"],  # the second attempt verifies
        question(1, 7): ["500"],  # never answers: failed after 1 + max_retries requests
        question(1, 8): ["length"],  # right, but cut at max_tokens: not a complete solution
    }
    s = server({question(a, b): solution(a, b) for a, b in pairs}, actions)
    teacher = Teacher(config(s.url, tmp_path, attempts=2))
    answers = {pair: teacher.submit(messages(*pair), str(sum(pair)), "math").result(timeout=60) for pair in pairs}

    for pair in [(1, 1), (1, 2), (1, 3), (1, 4), (1, 6)]:
        assert answers[pair].status == "verified", (pair, answers[pair])
        assert answers[pair].demonstration.startswith("<think>\n") and f"\\boxed{{{sum(pair)}}}" in answers[pair].demonstration
    assert answers[(1, 2)].demonstration == solution(1, 2)  # the reasoning field became the think block
    assert answers[(1, 4)].requests == 5 and answers[(1, 6)].requests == 2
    assert answers[(1, 5)].status == "unverified" and answers[(1, 5)].requests == 2
    assert answers[(1, 8)].status == "unverified" and answers[(1, 8)].requests == 2
    assert answers[(1, 7)].status == "failed" and answers[(1, 7)].requests == 6 and answers[(1, 7)].error == "HTTP 500"
    assert answers[(1, 1)].completion_tokens > 0 and answers[(1, 1)].prompt_tokens == 10

    # The key went in the Authorization header, and nowhere into what relift wrote.
    assert {r["auth_sha256"] for r in s.requests()} == {hashlib.sha256(f"Bearer {SECRET}".encode()).hexdigest()}
    cache_text = (tmp_path / "cache.jsonl").read_text()
    assert SECRET not in cache_text and len(cache_text.splitlines()) == 7  # the failed question is not cached

    # A second teacher on the same cache pays only for the question that failed.
    before = len(s.requests())
    again = Teacher(config(s.url, tmp_path, attempts=2))
    for pair in pairs:
        if pair != (1, 7):
            answer = again.ask(messages(*pair), str(sum(pair)), "math")
            assert answer.cached and answer.status == answers[pair].status and answer.requests == 0
    assert again.ask(messages(1, 7), "8", "math").status == "failed"
    assert len(s.requests()) == before + 6


def test_budget_timeout_length_and_refused_key(server, tmp_path):
    pairs = [(2, 1), (2, 2), (2, 3)]
    s = server({question(a, b): solution(a, b) for a, b in pairs},
               {question(2, 3): ["slow:3"], question(9, 9): ["401"]})
    budget = Teacher(config(s.url, tmp_path, request_budget=2, cache=str(tmp_path / "b.jsonl")))
    statuses = [budget.ask(messages(*pair), str(sum(pair)), "math") for pair in pairs[:2]]
    assert [a.status for a in statuses] == ["verified", "verified"]
    over = budget.ask(messages(3, 3), "6", "math")
    assert over.status == "failed" and over.error == "request budget spent" and over.requests == 0
    assert len(s.requests()) == 2

    slow = Teacher(config(s.url, tmp_path, timeout_s=0.5, max_retries=1, cache=str(tmp_path / "t.jsonl")))
    timed_out = slow.ask(messages(2, 3), "5", "math")
    assert timed_out.status == "failed" and timed_out.requests == 2 and "Timeout" in timed_out.error

    # Over max_target_len tokens with the EOS (here one token per character): graded right, not used.
    short = Teacher(config(s.url, tmp_path, max_target_len=20, cache=str(tmp_path / "l.jsonl")), count_tokens=len)
    assert short.ask(messages(2, 1), "3", "math").status == "too_long"

    with pytest.raises(TeacherUnavailable, match=r"check the model name and the key in \$RELIFT_TEST_KEY"):
        Teacher(config(s.url, tmp_path, cache=str(tmp_path / "k.jsonl"))).ask(messages(9, 9), "18", "math")


def test_requests_run_concurrently(server, tmp_path):
    pairs = [(4, i) for i in range(4)]
    s = server({question(a, b): solution(a, b) for a, b in pairs}, {question(a, b): ["slow:1"] for a, b in pairs})
    teacher = Teacher(config(s.url, tmp_path, concurrency=4))
    start = time.perf_counter()
    futures = [teacher.submit(messages(*pair), str(sum(pair)), "math") for pair in pairs]
    assert all(f.result(timeout=30).status == "verified" for f in futures)
    assert time.perf_counter() - start < 3.0  # four 1 s replies, one at a time, take 4 s


def test_a_real_model_answers_through_the_protocol(server, tmp_path, tiny):
    """The tiny model behind the same protocol: whatever it says is graded, and counted."""
    s = server({}, mode="model", model=tiny["model"])
    teacher = Teacher(config(s.url, tmp_path, max_tokens=16))
    answer = teacher.ask(messages(1, 1), "2", "math")
    assert answer.status in ("verified", "unverified") and answer.requests == 1
    assert [r["action"] for r in s.requests()] == ["model"]


def write_questions(path, pairs, with_target=()):
    rows = [{"problem": question(a, b), "answer": str(a + b),
             "solution": solution(a, b) if (a, b) in with_target else None} for a, b in pairs]
    pd.DataFrame(rows).to_parquet(path)


def prepare(source, out, url, *extra) -> list[str]:
    return [sys.executable, os.path.join(REPO, "dataset", "prepare_train.py"), "--input", str(source), "--output",
            str(out), "--system-prompt", "", "--teacher-endpoint", url, "--teacher-model", "teacher-7b",
            "--teacher-api-key-env", "RELIFT_TEST_KEY", *extra]


def test_prepare_train_fills_targets_and_a_kill_loses_no_paid_answer(server, tmp_path):
    pairs = [(5, i) for i in range(8)]
    answers = {question(a, b): solution(a, b) for a, b in pairs}
    actions = {question(a, b): ["slow:0.4"] for a, b in pairs}
    actions[question(5, 7)] = ["wrong"]
    s = server(answers, actions)
    source, out = tmp_path / "questions.parquet", tmp_path / "train.parquet"
    write_questions(source, pairs, with_target={(5, 0)})
    env = {**os.environ, "RELIFT_TEST_KEY": SECRET}

    first = subprocess.Popen(prepare(source, out, s.url, "--teacher-concurrency", "1"), env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while len(s.requests()) < 4 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert not out.exists()
    cached = len((tmp_path / "train.teacher_cache.jsonl").read_text().splitlines())
    assert cached >= 2

    result = subprocess.run(prepare(source, out, s.url, "--without-demo", "keep"), env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    asked = [r["question"] for r in s.requests()]
    # 7 questions lack a demonstration; only the one in flight at the kill can have been asked twice.
    assert len(asked) <= 7 + 1 and len(set(asked)) == 7
    summary = dict(re.findall(r"^  (teacher: \w+) +(\S+)$", result.stdout, re.M))
    assert summary["teacher: cached"] == str(cached)
    assert (summary["teacher: verified"], summary["teacher: unverified"], summary["teacher: failed"]) == ("6", "1", "0")
    rows = pd.read_parquet(out)
    targets = {r["prompt"][-1]["content"]: r["target"] for _, r in rows.iterrows()}
    assert len(targets) == 8 and targets[question(5, 7)] is None
    assert targets[question(5, 3)][0]["content"] == solution(5, 3)
    for path in tmp_path.iterdir():
        if path.is_file() and path.suffix in (".parquet", ".jsonl"):
            assert SECRET.encode() not in path.read_bytes(), path

    dropped = subprocess.run(prepare(source, tmp_path / "drop.parquet", s.url, "--teacher-cache",
                                     str(tmp_path / "train.teacher_cache.jsonl")),
                             env=env, capture_output=True, text=True, timeout=120)
    assert dropped.returncode == 0 and len(pd.read_parquet(tmp_path / "drop.parquet")) == 7
    assert len(s.requests()) == len(asked)  # all from the cache


def test_queue_asks_once_collects_without_waiting_and_resumes_pending(server, tmp_path):
    from relift.teacher import TeacherQueue

    pairs = [(6, 1), (6, 2)]
    s = server({question(a, b): solution(a, b) for a, b in pairs}, {question(6, 2): ["slow:2", "ok"]})
    queue = TeacherQueue(Teacher(config(s.url, tmp_path)))
    infos = {pair: {"messages": messages(*pair), "ground_truth": str(sum(pair)), "data_source": "math",
                    "prompt_ids": [1, 2, 3]} for pair in pairs}
    assert queue.ask("q61", infos[(6, 1)]) and not queue.ask("q61", infos[(6, 1)])
    assert queue.ask("q62", infos[(6, 2)])
    start = time.perf_counter()
    while not queue.pending["q61"][1].done():
        time.sleep(0.01)
    taught, metrics = queue.harvest()
    assert time.perf_counter() - start < 1.5  # did not wait for the slow one
    assert [(qid, answer.status) for qid, _, answer in taught] == [("q61", "verified")]
    assert (metrics["teacher/asked"], metrics["teacher/answered"], metrics["teacher/pending"]) == (2, 1, 1)
    assert metrics["teacher/verified_share"] == 1.0 and metrics["teacher/requests"] == 1

    # A checkpoint now holds the slow question; a new queue asks it again and gets the second, fast reply.
    state = json.loads(json.dumps(queue.state_dict()))
    assert list(state["pending"]) == ["q62"] and state["totals"]["verified"] == 1
    resumed = TeacherQueue(Teacher(config(s.url, tmp_path, request_budget=2)))
    resumed.load_state_dict(state)  # the budget counts the request made before the checkpoint
    resumed.pending["q62"][1].result(timeout=10)
    taught, metrics = resumed.harvest()
    assert [qid for qid, _, _ in taught] == ["q62"] and metrics["teacher/verified_total"] == 2
    assert metrics["teacher/asked"] == 0  # re-asked pending questions are not new questions
    assert resumed.teacher.requests_sent == 2
    over = resumed.teacher.ask(messages(6, 3), "9", "math")
    assert over.status == "failed" and over.error == "request budget spent"


def test_preflight_names_what_is_wrong(server, tmp_path):
    s = server({})
    assert preflight(config(s.url, tmp_path)) is None
    wrong_model = preflight(config(s.url, tmp_path, model="teacher-70b"))
    assert wrong_model == f"teacher model teacher-70b is not served at {s.url}: it serves teacher-7b"
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    assert preflight(config(nobody, tmp_path, max_retries=0)) == (
        f"teacher endpoint {nobody}: no OpenAI-compatible server answers there (APIConnectionError)")
    missing_v1 = preflight(config(s.url.removesuffix("/v1") + "/api", tmp_path))
    assert missing_v1.endswith("answered HTTP 404; an OpenAI-compatible base URL ends in /v1")

    # prepare_train stops before asking anything, naming its flags.
    source = tmp_path / "q.parquet"
    write_questions(source, [(7, 1)])
    result = subprocess.run(prepare(source, tmp_path / "out.parquet", nobody), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "no OpenAI-compatible server answers there" in result.stderr
    assert "(--teacher-endpoint, --teacher-model)" in result.stderr and not (tmp_path / "out.parquet").exists()
