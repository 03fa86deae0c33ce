"""relift.teacher against a real chat-completions server on 127.0.0.1 (tests/chat_server.py), through the
`openai` client: verification, retries, budget, cache, the key, and the offline path in prepare_train."""

import email.utils
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
from helpers import REPO, SECRET, Server

from relift.config import trainer_yaml
from relift.layout import layout_problem, normalise_demonstration
from relift.teacher import Teacher, TeacherConfig, TeacherUnavailable, config_from, preflight, retry_after_s


def solution(a: int, b: int) -> str:
    return f"<think>\n{a} + {b} = {a + b}\n</think>\n\nThe answer is \\boxed{{{a + b}}}."


def question(a: int, b: int) -> str:
    return f"What is {a} + {b}?"


def messages(a: int, b: int) -> list[dict]:
    return [{"role": "system", "content": "Think, then box the answer."}, {"role": "user", "content": question(a, b)}]


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
    """The YAML's defaults (relift.teacher), with a test's endpoint, cache and timings."""
    values = dict(base_url=url, model="teacher-7b", cache=str(tmp_path / "cache.jsonl"), api_key_env="RELIFT_TEST_KEY",
                  backoff_s=0.05, timeout_s=5.0, max_retries=5, concurrency=4)
    return config_from(trainer_yaml().relift.teacher, **{**values, **overrides})


def test_normalise_to_the_training_layout():
    normalise = normalise_demonstration
    assert normalise("<think>\nx\n</think>\nSo \\boxed{5}.") == "<think>\nx\n</think>\n\nSo \\boxed{5}."
    assert normalise("So 5.", reasoning="we get \\boxed{5}") == (
        "<think>\nwe get \\boxed{5}\n</think>\n\nSo 5.\n\nThe final answer is $\\boxed{5}$.")
    final = "\n</think>\n\nThe final answer is $\\boxed{5}$."
    assert normalise("2 + 3 = \\boxed{5}") == "<think>\n2 + 3 = \\boxed{5}" + final
    assert normalise("<think>\ncut short, \\boxed{5}") == "<think>\ncut short, \\boxed{5}" + final
    assert normalise("no boxed answer") is None and normalise(None) is None


ONE_BLOCK = "<think>\n2 + 3 = 5\n</think>\n\nSo \\boxed{5}."


@pytest.mark.parametrize("content, reasoning, expected", [
    # The same reasoning in the separate field and in content's think block (a server that sends both).
    ("<think>\n2 + 3 = 5\n</think>\n\nSo \\boxed{5}.", "2 + 3 = 5", ONE_BLOCK),
    ("<think>2 + 3 =   5</think>So \\boxed{5}.", "\n2 + 3 = 5\n", ONE_BLOCK),
    # The field holds the tags too; content opens none (the prompt did) but closes it.
    ("2 + 3 = 5\n</think>\nSo \\boxed{5}.", "<think>\n2 + 3 = 5\n</think>", ONE_BLOCK),
    # One place holds part of the other's reasoning: the longer is kept, once.
    ("<think>\n2 + 3\n</think>\nSo \\boxed{5}.", "2 + 3 = 5", ONE_BLOCK),
    ("<think>\n2 + 3 = 5\n</think>\nSo \\boxed{5}.", "2 + 3", ONE_BLOCK),
    # Different reasoning in each place: both, in one block, the field's first (it was generated first).
    ("<think>\ncheck: 5 - 3 = 2\n</think>\nSo \\boxed{5}.", "2 + 3 = 5",
     "<think>\n2 + 3 = 5\n\ncheck: 5 - 3 = 2\n</think>\n\nSo \\boxed{5}."),
    # Two blocks in content, and a stray tag in the answer: everything before the last `</think>` is reasoning.
    ("<think>2 + 3</think><think> = 5</think>So <think>\\boxed{5}.", None, ONE_BLOCK),
    # Only the field holds reasoning, content only the answer; the field's tags are dropped.
    ("So \\boxed{5}.", "<think>2 + 3 = 5</think>", ONE_BLOCK),
])
def test_one_think_block_wherever_the_server_puts_it(content, reasoning, expected):
    text = normalise_demonstration(content, reasoning)
    assert text == expected
    assert layout_problem(text) is None and text.count("<think>") == text.count("</think>") == 1


@pytest.mark.parametrize("content, reasoning", [
    ("So \\boxed{5}.", "2 + 3 = 5<｜end▁of▁sentence｜>"),  # DeepSeek's end of sequence, left in the reasoning
    ("So \\boxed{5}.<|im_end|>\n", "2 + 3 = 5"),
    ("<think>\n2 + 3 = 5\n</think>\n\nSo \\boxed{5}.</s><|endoftext|>", None),
])
def test_end_of_sequence_text_at_the_end_is_dropped(content, reasoning):
    assert normalise_demonstration(content, reasoning) == ONE_BLOCK


@pytest.mark.parametrize("content, reasoning", [
    ("So \\boxed{5}.<|im_end|>\n<|im_start|>user\nAnd 2 + 2?", "2 + 3 = 5"),  # the reply ran into a new turn
    ("So \\boxed{5}.", "2 + 3<｜end▁of▁sentence｜> = 5"),
])
def test_special_token_text_inside_a_reply_makes_it_unusable(content, reasoning):
    assert normalise_demonstration(content, reasoning) is None


def test_the_teacher_drops_its_end_of_sequence_text(server, tmp_path):
    s = server({question(8, 3): solution(8, 3)}, {question(8, 3): ["eos-reasoning"]})
    answer = Teacher(config(s.url, tmp_path)).ask(messages(8, 3), "11", "math")
    assert answer.status == "verified" and answer.demonstration == solution(8, 3)


def test_retry_after_is_the_servers_wait(server, tmp_path):
    assert retry_after_s({"retry-after": "2"}) == 2.0 and retry_after_s({"retry-after": "0.5"}) == 0.5
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date passed
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after_s({"retry-after": later}) <= 31
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s({}) is None

    s = server({question(8, 4): solution(8, 4)}, {question(8, 4): ["429-retry-after:1.5", "ok"]})
    answer = Teacher(config(s.url, tmp_path, backoff_s=0.01)).ask(messages(8, 4), "12", "math")
    first, second = (request["time"] for request in s.requests())
    assert answer.status == "verified" and answer.requests == 2
    assert second - first >= 1.5  # relift's own backoff would have waited 0.01-0.02 s


def test_the_cache_answers_only_the_same_request(server, tmp_path):
    """A reply cut at the token limit is cached as unverified; raising the limit asks again."""
    s = server({question(8, 5): solution(8, 5)}, {question(8, 5): ["length", "ok"]})
    short = Teacher(config(s.url, tmp_path, attempts=1, max_tokens=64)).ask(messages(8, 5), "13", "math")
    assert short.status == "unverified" and short.requests == 1
    raised = Teacher(config(s.url, tmp_path, attempts=1, max_tokens=128)).ask(messages(8, 5), "13", "math")
    assert raised.status == "verified" and not raised.cached and raised.requests == 1
    for tokens, status in ((64, "unverified"), (128, "verified")):
        again = Teacher(config(s.url, tmp_path, attempts=1, max_tokens=tokens)).ask(messages(8, 5), "13", "math")
        assert again.cached and again.status == status
    hotter = Teacher(config(s.url, tmp_path, attempts=1, max_tokens=128, temperature=1.0))
    assert not hotter.ask(messages(8, 5), "13", "math").cached
    assert len(s.requests()) == 3


def test_reasoning_in_both_fields_gives_one_think_block(server, tmp_path):
    pairs = [(8, 1), (8, 2)]
    s = server({question(a, b): solution(a, b) for a, b in pairs}, {question(a, b): ["both"] for a, b in pairs})
    teacher = Teacher(config(s.url, tmp_path))
    for pair in pairs:
        answer = teacher.ask(messages(*pair), str(sum(pair)), "math")
        assert answer.status == "verified" and answer.demonstration == solution(*pair)
        assert answer.demonstration.count("<think>") == answer.demonstration.count("</think>") == 1


def test_the_token_limit_field_is_a_setting(server, tmp_path):
    """OpenAI's reasoning models refuse `max_tokens` (HTTP 400): the default field works there and on vLLM;
    the refusal of the other stops at once with the server's message, and asks nothing more."""
    pairs = [(3, i) for i in range(6)]
    s = server({question(a, b): solution(a, b) for a, b in pairs}, {question(a, b): ["o1"] for a, b in pairs})
    assert trainer_yaml().relift.teacher.max_tokens_param == "max_completion_tokens"
    answer = Teacher(config(s.url, tmp_path)).ask(messages(3, 0), "3", "math")
    assert answer.status == "verified" and [r["limit_field"] for r in s.requests()] == ["max_completion_tokens"]

    old = Teacher(config(s.url, tmp_path, max_tokens_param="max_tokens", concurrency=2,
                         cache=str(tmp_path / "old.jsonl")))
    futures = [old.submit(messages(*pair), str(sum(pair)), "math") for pair in pairs[1:]]
    for future in futures:
        with pytest.raises(TeacherUnavailable) as refused:
            future.result(timeout=30)
        assert (f"teacher at {s.url}, model teacher-7b: HTTP 400: Unsupported parameter: 'max_tokens' is not "
                "supported with this model. Use 'max_completion_tokens' instead.") in str(refused.value)
    sent = [r["limit_field"] for r in s.requests()[1:]]
    assert set(sent) == {"max_tokens"} and len(sent) <= 2  # the requests in flight at the first refusal, no retry
    assert config(s.url, tmp_path, max_tokens_param="max_new_tokens").problems() == [
        "max_tokens_param='max_new_tokens': max_completion_tokens (OpenAI, vLLM, SGLang) or max_tokens (a server "
        "that knows only the older name)"]


@pytest.mark.parametrize("action, message", [
    ("400", "Unsupported value: 'temperature' does not support 0.6 with this model. Only the default (1) value is "
            "supported."),
    ("400-flat", "This model's maximum context length is 4096 tokens. However, you requested 8212 tokens"),
])
def test_a_refusal_stops_with_the_servers_message(server, tmp_path, action, message):
    s = server({question(9, 1): solution(9, 1)}, {question(9, 1): [action]})
    teacher = Teacher(config(s.url, tmp_path))
    with pytest.raises(TeacherUnavailable, match=re.escape(f"HTTP 400: {message}")) as refused:
        teacher.ask(messages(9, 1), "10", "math")
    assert "(the request's settings: max_tokens_param, max_tokens, temperature)" in str(refused.value)
    with pytest.raises(TeacherUnavailable, match=re.escape(message)):  # later questions: no request
        teacher.ask(messages(9, 2), "11", "math")
    assert len(s.requests()) == 1 and not os.path.exists(teacher.cache.path)


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
        demonstration = answers[pair].demonstration
        assert demonstration.startswith("<think>\n") and f"\\boxed{{{sum(pair)}}}" in demonstration
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
    # A URL that ends in /v1 already is not told to: the path is wrong, or the server has no model list.
    unlisted = server({}, flags=("--no-models",))
    for url in (unlisted.url, unlisted.url + "/"):
        assert preflight(config(url, tmp_path)) == (
            f"teacher endpoint {url}: GET /models answered HTTP 404; the path is wrong, or the server lists no models")

    # prepare_train stops before asking anything, naming its flags.
    source = tmp_path / "q.parquet"
    write_questions(source, [(7, 1)])
    result = subprocess.run(prepare(source, tmp_path / "out.parquet", nobody), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "no OpenAI-compatible server answers there" in result.stderr
    assert "(--teacher-endpoint, --teacher-model)" in result.stderr and not (tmp_path / "out.parquet").exists()


def test_prepare_train_stops_at_a_refusal_with_the_servers_message(server, tmp_path):
    """Offline, a non-retryable 4xx ends the preparation at once with the server's own message, not with
    "no valid rows to write"; the default token-limit field passes where `max_tokens` is refused."""
    pairs = [(10, i) for i in range(6)]
    s = server({question(a, b): solution(a, b) for a, b in pairs}, {question(a, b): ["o1"] for a, b in pairs})
    source, out = tmp_path / "questions.parquet", tmp_path / "train.parquet"
    write_questions(source, pairs)
    refused = subprocess.run(prepare(source, out, s.url, "--teacher-max-tokens-param", "max_tokens",
                                     "--teacher-concurrency", "2"), capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and not out.exists(), refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        f"prepare_train: error: teacher at {s.url}, model teacher-7b: HTTP 400: Unsupported parameter: 'max_tokens' "
        "is not supported with this model. Use 'max_completion_tokens' instead. (the request's settings: "
        "max_tokens_param, max_tokens, temperature)")
    assert len(s.requests()) <= 2

    done = subprocess.run(prepare(source, out, s.url), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_parquet(out)) == 6
    assert {r["limit_field"] for r in s.requests()[-6:]} == {"max_completion_tokens"}
