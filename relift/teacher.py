"""Demonstrations from a teacher model behind any OpenAI-compatible chat endpoint, verified before use.

    teacher = Teacher(config_from(relift.config.trainer_yaml().relift.teacher, base_url="http://127.0.0.1:8000/v1",
                                  model="Qwen/QwQ-32B", cache="teacher_cache.jsonl"), count_tokens=len_in_tokens)
    answer = teacher.ask(messages, ground_truth, data_source)          # blocking
    future = teacher.submit(messages, ground_truth, data_source)       # background, at most `concurrency`

A question the policy never solves and that has no worked solution gets one from the teacher: up to
`attempts` replies, each normalised to the training layout (relift.layout.normalise_demonstration: one think
block, then an answer with a final `\\boxed{}`, wherever the server put the reasoning) and graded by
relift's own reward against the row's ground truth. Only a reply that the server did not cut at
`max_tokens` (sent as `max_tokens_param`), that grades correct and that fits `max_target_len` tokens with
its EOS becomes a demonstration.

Requests: 408, 409, 429, 5xx, timeouts, dropped connections and malformed replies are retried with
exponential backoff and jitter (`max_retries`), or after the server's `Retry-After` where it sends one (seconds
or an HTTP date; at most MAX_WAIT_S either way). Any other 4xx (a wrong key or model, a field the server
refuses) raises TeacherUnavailable with the server's own message, and every later question raises it
without a request: the run stops at once. Every HTTP request counts against `request_budget` per Teacher
(per run); past it, questions fail without a request.

Cache: one JSON line per answered question, keyed by what can change the answer (teacher model, question
messages, temperature, token limit: a reply cut at a lower limit is asked again after the limit is raised), appended,
flushed and fsynced under a file lock, so that the offline and online paths and concurrent processes share
it and a `kill -9` loses at most the line being written (a torn last line is skipped on load). Verified,
unverified (every attempt graded wrong) and too-long outcomes are cached: a question is paid for once.
Failures (network, budget) are not, and are asked again later.

The API key is read from the environment variable `api_key_env` when the client is built; it is not
part of the config, the cache, the metrics or any file relift writes.
"""

from __future__ import annotations

import email.utils
import fcntl
import hashlib
import json
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from urllib.parse import urlparse

from relift.layout import normalise_demonstration
from relift.reward import grade

# Cached outcomes: the teacher answered. Not cached: "failed" (no answer: network, budget).
CACHED = ("verified", "unverified", "too_long")
# The request field of the reply's token limit: OpenAI's current name (its reasoning models refuse the
# other with HTTP 400; vLLM and SGLang accept both), or the older one.
TOKEN_LIMIT_FIELDS = ("max_completion_tokens", "max_tokens")
# Retried statuses besides 5xx; any other 4xx stops the run (asking again would be refused again).
RETRIED_STATUSES = (408, 409, 429)
# The longest wait before a retry, whether relift's backoff or the server's Retry-After asks for more.
MAX_WAIT_S = 60.0


@dataclass
class TeacherConfig:
    """relift.teacher's keys: relift/config/relift_trainer.yaml documents each and holds their defaults
    (`config_from` builds one from it). `max_target_len` is relift.max_target_len (None: no length check)."""

    base_url: str | None
    model: str | None
    cache: str
    api_key_env: str
    concurrency: int
    timeout_s: float
    max_retries: int
    backoff_s: float
    max_tokens: int
    max_tokens_param: str
    temperature: float
    attempts: int
    request_budget: int | None
    max_target_len: int | None = None

    def problems(self) -> list[str]:
        """Config keys whose values cannot work, each with a value that does."""
        found = []
        if not str(self.base_url or "").startswith(("http://", "https://")):
            found.append(f"base_url={self.base_url!r}: an http(s) URL, e.g. http://127.0.0.1:8000/v1")
        if not self.model:
            found.append("model is empty: the served model's name, e.g. Qwen/QwQ-32B")
        if not self.cache:
            found.append("cache is empty: a file path, e.g. teacher_cache.jsonl")
        for name, low in (("concurrency", 1), ("attempts", 1), ("max_tokens", 1), ("max_retries", 0)):
            if int(getattr(self, name)) < low:
                found.append(f"{name}={getattr(self, name)}: at least {low}")
        if self.max_tokens_param not in TOKEN_LIMIT_FIELDS:
            found.append(f"max_tokens_param={self.max_tokens_param!r}: max_completion_tokens (OpenAI, vLLM, SGLang) "
                         "or max_tokens (a server that knows only the older name)")
        for name in ("timeout_s", "backoff_s"):
            if float(getattr(self, name)) <= 0:
                found.append(f"{name}={getattr(self, name)}: a positive number of seconds")
        if self.request_budget is not None and int(self.request_budget) < 0:
            found.append(f"request_budget={self.request_budget}: null (no limit) or >= 0")
        return found


@dataclass
class Answer:
    """What the teacher gave for one question. status: verified, unverified, too_long or failed."""

    status: str
    demonstration: str | None = None
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False
    error: str | None = None


def cache_key(model: str, messages: list[dict], settings: dict) -> str:
    """sha256 of what can change the teacher's answer: model, messages (role, content) and the request's
    sampling settings (temperature, token limit)."""
    question = [{"role": m["role"], "content": m["content"]} for m in messages]
    return hashlib.sha256(json.dumps([model, question, settings], sort_keys=True).encode()).hexdigest()


def retry_after_s(headers) -> float | None:
    """The wait a 429 or 503 asks for in its `Retry-After` header (RFC 9110 10.2.3: seconds, or an HTTP date),
    in seconds; None without a readable one."""
    value = (headers or {}).get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class DemonstrationCache:
    """Append-only JSON lines; the last record of a key wins."""

    def __init__(self, path: str):
        self.path = path
        self._records: dict[str, dict] = {}
        self._lock = threading.Lock()
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:  # a line torn by a kill during its write
                        continue
                    self._records[record["key"]] = record

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: str) -> dict | None:
        return self._records.get(key)

    def put(self, record: dict) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        with self._lock:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            with open(self.path, "ab") as f:
                fcntl.flock(f, fcntl.LOCK_EX)  # other processes append to the same file
                try:
                    f.write(line)
                    f.flush()
                    os.fsync(f.fileno())
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
            self._records[record["key"]] = record


class TeacherUnavailable(RuntimeError):
    """The endpoint refuses the requests (wrong key, unknown model, a field it does not accept): asking more
    would not help."""


@dataclass
class _Reply:
    content: str | None
    reasoning: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False


@dataclass
class _Job:
    messages: list[dict]
    ground_truth: str
    data_source: str
    future: Future = field(default_factory=Future)


def _client(config: TeacherConfig):
    """(the openai module, a client without its own retries: Teacher retries and counts each request)."""
    import openai

    key = os.environ.get(config.api_key_env)
    # A local vLLM / SGLang server needs no key; the client insists on one.
    return openai, openai.OpenAI(base_url=config.base_url, api_key=key or "no-key", timeout=config.timeout_s,
                                 max_retries=0)


def preflight(config: TeacherConfig) -> str | None:
    """One request to the endpoint's model list, before any question: a problem line, or None."""
    problems = config.problems()
    if problems:
        return "; ".join(problems)
    openai, client = _client(config)
    where = f"teacher endpoint {config.base_url}"
    try:
        served = [model.id for model in client.models.list()]
    except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
        return f"{where}: refused the key in ${config.api_key_env} (HTTP {error.status_code})"
    except openai.APIStatusError as error:
        ends_in_v1 = urlparse(config.base_url).path.rstrip("/").endswith("/v1")
        hint = ("the path is wrong, or the server lists no models" if ends_in_v1
                else "an OpenAI-compatible base URL ends in /v1")
        return f"{where}: GET /models answered HTTP {error.status_code}; {hint}"
    except (openai.APIError, ValueError) as error:
        return f"{where}: no OpenAI-compatible server answers there ({type(error).__name__})"
    if config.model not in served:
        return (f"teacher model {config.model} is not served at {config.base_url}: it serves "
                f"{', '.join(served[:5])}{' ...' if len(served) > 5 else ''}")
    return None


class Teacher:
    def __init__(self, config: TeacherConfig, count_tokens: Callable[[str], int] | None = None):
        problems = config.problems()
        if problems:
            raise ValueError("teacher: " + "; ".join(problems))
        self.config = config
        self.count_tokens = count_tokens
        self.cache = DemonstrationCache(config.cache)
        self._openai, self._client = _client(config)
        self.requests_sent = 0
        self.refusal: TeacherUnavailable | None = None
        """The first non-retryable refusal; every later question raises it without a request."""
        self._budget_lock = threading.Lock()
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._workers: list[threading.Thread] = []

    # -- background --------------------------------------------------------------------------------------
    def submit(self, messages: list[dict], ground_truth: str, data_source: str) -> Future:
        """Ask in one of `concurrency` daemon threads (they never hold up the process's exit)."""
        if not self._workers:
            for i in range(self.config.concurrency):
                worker = threading.Thread(target=self._work, name=f"relift-teacher-{i}", daemon=True)
                worker.start()
                self._workers.append(worker)
        job = _Job(messages, ground_truth, data_source)
        self._jobs.put(job)
        return job.future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                job.future.set_result(self.ask(job.messages, job.ground_truth, job.data_source))
            except BaseException as error:  # noqa: BLE001 - handed to whoever waits on the future
                job.future.set_exception(error)

    # -- one question ------------------------------------------------------------------------------------
    def ask(self, messages: list[dict], ground_truth: str, data_source: str) -> Answer:
        """Raises TeacherUnavailable when the server refused a request of this teacher's for good."""
        if self.refusal is not None:
            raise TeacherUnavailable(str(self.refusal))
        settings = {"temperature": self.config.temperature, "max_tokens": self.config.max_tokens}
        key = cache_key(self.config.model, messages, settings)
        record = self.cache.get(key)
        if record is not None:
            return Answer(record["status"], record.get("demonstration"), cached=True)
        answer = Answer("unverified")
        start = time.perf_counter()
        for _ in range(self.config.attempts):
            reply, requests, error = self._complete(messages)
            answer.requests += requests
            if reply is None:
                answer.status, answer.error = "failed", error
                break
            answer.prompt_tokens += reply.prompt_tokens
            answer.completion_tokens += reply.completion_tokens
            # A reply cut at max_tokens is not a whole solution.
            text = None if reply.truncated else normalise_demonstration(reply.content, reply.reasoning)
            if text is None or not grade(data_source, text, ground_truth).correct:
                continue
            if self.count_tokens is not None and self.config.max_target_len is not None \
                    and self.count_tokens(text) + 1 > self.config.max_target_len:  # + EOS, as the trainer counts
                answer.status = "too_long"
                continue
            answer.status, answer.demonstration = "verified", text
            break
        answer.latency_s = time.perf_counter() - start
        if answer.status in CACHED:
            self.cache.put({"key": key, "model": self.config.model, **settings, "status": answer.status,
                            "demonstration": answer.demonstration, "requests": answer.requests,
                            "prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                            "time": time.time()})
        return answer

    def _take_budget(self) -> bool:
        with self._budget_lock:
            if self.config.request_budget is not None and self.requests_sent >= self.config.request_budget:
                return False
            self.requests_sent += 1
            return True

    def _complete(self, messages: list[dict]) -> tuple[_Reply | None, int, str | None]:
        """One chat completion with retries: (reply or None, HTTP requests made, last error)."""
        openai = self._openai
        requests, error, asked_wait = 0, None, None
        for retry in range(self.config.max_retries + 1):
            if retry:
                backoff = self.config.backoff_s * 2 ** (retry - 1) + random.uniform(0, self.config.backoff_s)
                time.sleep(min(MAX_WAIT_S, backoff if asked_wait is None else asked_wait))
                asked_wait = None
            if not self._take_budget():
                return None, requests, "request budget spent"
            requests += 1
            try:
                response = self._client.chat.completions.create(
                    model=self.config.model, messages=messages, temperature=self.config.temperature,
                    **{self.config.max_tokens_param: self.config.max_tokens})
            except openai.APIStatusError as failure:
                if failure.status_code in RETRIED_STATUSES or failure.status_code >= 500:
                    error = f"HTTP {failure.status_code}"
                    asked_wait = retry_after_s(failure.response.headers)
                    continue
                self.refusal = TeacherUnavailable(self._refusal_line(failure))
                raise self.refusal from None
            except (openai.APIError, ValueError) as failure:  # timeout, dropped connection, malformed JSON
                error = type(failure).__name__
                continue
            if not getattr(response, "choices", None):
                error = "reply without choices"
                continue
            choice, usage = response.choices[0], response.usage
            extra = choice.message.model_extra or {}
            return _Reply(choice.message.content, extra.get("reasoning_content") or extra.get("reasoning"),
                          getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0,
                          truncated=choice.finish_reason == "length"), requests, None
        return None, requests, error

    def _refusal_line(self, failure) -> str:
        """The server's own message (OpenAI's and vLLM's error bodies: `message`), and what to check."""
        body = failure.body
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, str):
            message = failure.response.text[:500] or failure.message
        what = ("the request's settings: max_tokens_param, max_tokens, temperature"
                if failure.status_code not in (401, 403, 404)
                else f"check the model name and the key in ${self.config.api_key_env}")
        return (f"teacher at {self.config.base_url}, model {self.config.model}: HTTP {failure.status_code}: "
                f"{message.strip()} ({what})")


def summary_counts(answers: list[Answer]) -> dict:
    """Counts over answers, for a summary line or per-step metrics."""
    counts = {"asked": len(answers), "cached": sum(a.cached for a in answers),
              "requests": sum(a.requests for a in answers),
              "prompt_tokens": sum(a.prompt_tokens for a in answers),
              "completion_tokens": sum(a.completion_tokens for a in answers)}
    for status in ("verified", "unverified", "too_long", "failed"):
        counts[status] = sum(a.status == status for a in answers)
    return counts


def config_from(section, **overrides) -> TeacherConfig:
    """TeacherConfig from a relift.teacher mapping (a composed config's, or relift.config.trainer_yaml()'s),
    `enable` left out, `overrides` on top. Raises TypeError for an unknown key."""
    values = {k: v for k, v in dict(section).items() if k != "enable"}
    return TeacherConfig(**{**values, **overrides})


class TeacherQueue:
    """The online path's bookkeeping, free of veRL: questions asked in the background by question id, their
    answers collected without waiting, per-step metrics, and the pending questions as checkpoint state.

    `info` is whatever the caller needs back with the answer, JSON-serialisable, with at least `messages`,
    `ground_truth` and `data_source`.
    """

    def __init__(self, teacher: Teacher):
        self.teacher = teacher
        self.pending: dict[str, tuple[dict, Future]] = {}
        self.totals = {"requests": 0, "verified": 0, "answered": 0, "completion_tokens": 0, "prompt_tokens": 0}
        self._asked = 0

    def ask(self, question_id: str, info: dict) -> bool:
        """Ask unless this question is already pending; True when a new question was sent."""
        if question_id in self.pending:
            return False
        future = self.teacher.submit(info["messages"], info["ground_truth"], info["data_source"])
        self.pending[question_id] = (info, future)
        self._asked += 1
        return True

    def harvest(self) -> tuple[list[tuple[str, dict, Answer]], dict]:
        """Answers that arrived since the last call, verified ones as (question_id, info, answer), and the
        step's metrics. A TeacherUnavailable from the endpoint is raised here."""
        done = [qid for qid, (_, future) in self.pending.items() if future.done()]
        answers = []
        for qid in done:
            info, future = self.pending.pop(qid)
            answers.append((qid, info, future.result()))
        counts = summary_counts([answer for _, _, answer in answers])
        fresh = [answer.latency_s for _, _, answer in answers if not answer.cached]
        for key in self.totals:
            self.totals[key] += counts[key] if key != "answered" else counts["asked"]
        metrics = {
            "teacher/asked": self._asked,
            "teacher/answered": counts["asked"],
            "teacher/verified": counts["verified"],
            "teacher/verified_share": counts["verified"] / counts["asked"] if counts["asked"] else float("nan"),
            "teacher/unverified": counts["unverified"] + counts["too_long"],
            "teacher/too_long": counts["too_long"],
            "teacher/failures": counts["failed"],
            "teacher/cached": counts["cached"],
            "teacher/requests": counts["requests"],
            "teacher/latency_s": sum(fresh) / len(fresh) if fresh else float("nan"),
            "teacher/prompt_tokens": counts["prompt_tokens"],
            "teacher/completion_tokens": counts["completion_tokens"],
            "teacher/pending": len(self.pending),
            **{f"teacher/{key}_total": value for key, value in self.totals.items()},
        }
        self._asked = 0
        verified = [(qid, info, answer) for qid, info, answer in answers if answer.status == "verified"]
        return verified, metrics

    def state_dict(self) -> dict:
        """Questions not yet collected (answered or not): asked again on resume, from the cache if answered."""
        return {"pending": {qid: info for qid, (info, _) in self.pending.items()}, "totals": dict(self.totals)}

    def load_state_dict(self, state: dict) -> None:
        self.totals.update(state.get("totals", {}))
        # The request budget spans the run, resumes included (requests of uncollected answers aside).
        self.teacher.requests_sent = max(self.teacher.requests_sent, self.totals["requests"])
        for qid, info in state.get("pending", {}).items():
            self.ask(qid, info)
        self._asked = 0
