"""Rule-based reward for math reasoning, in veRL's custom-reward signature.

    compute_score(data_source, solution_str, ground_truth, extra_info=None) -> {"score", "acc", ...}

The rule (the reference's reward version 3):
- the prompt already opened `<think>`, so the response must close it; the answer is the text after the
  first `</think>`. Without `</think>` the response scores 0 when `require_think` is on.
- math answers are graded by math-verify against `$ground_truth$`;
- multiple-choice rows (a ground truth that is one option letter A-J, as in GPQA and ARC-c; or a digit
  1-9 on ARC-style rows numbered that way) are graded by the option the response commits to:
  `\\boxed{C}`, `ANSWER: C`, `answer is C`, `(C)`.

Every grading call is bounded in time. math-verify's own timeout uses SIGALRM, which only works on a
process's main thread, and veRL calls the reward from executor threads inside Ray workers. So grading
runs in a small pool of child processes (on their main thread, where math-verify's timeout works) and
the caller waits at most `timeout_s`; a grader that overruns is killed and the pool replaced.
`RELIFT_GRADER_PROCESSES` sets the pool's size (default 1 per process that grades).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import multiprocessing
import os
import re
import threading
from dataclasses import dataclass

THINK_CLOSE = "</think>"
DEFAULT_TIMEOUT_S = 10.0

_CHOICE_SOURCES = ("gpqa", "arc", "mmlu")
_LETTER = re.compile(r"^\s*\(?([A-J])\)?\s*$")
_DIGIT = re.compile(r"^\s*\(?([1-9])\)?\s*$")


def _choice_patterns(labels: str) -> list[re.Pattern]:
    """Most explicit first. labels: a regex class body such as "A-J" or "1-9"."""
    return [
        re.compile(rf"\\boxed\{{\s*(?:\\text\{{)?\s*\(?([{labels}])\)?\s*\}}?\s*\}}"),
        re.compile(rf"ANSWER\s*[:：]\s*\(?([{labels}])\)?", re.IGNORECASE),
        re.compile(rf"answer\s+is\s*[:：]?\s*\(?([{labels}])\)?(?![A-Za-z0-9])", re.IGNORECASE),
        re.compile(rf"\(([{labels}])\)"),
    ]


_LETTER_PATTERNS = _choice_patterns("A-J")
_DIGIT_PATTERNS = _choice_patterns("1-9")


def extract_answer_text(solution_str: str, require_think: bool = True) -> str | None:
    """The part of a response that is graded: after the first `</think>` (None if it is required but absent)."""
    if THINK_CLOSE in solution_str:
        return solution_str.split(THINK_CLOSE, 1)[1]
    return None if require_think else solution_str


def choice_label(data_source: str, ground_truth: str) -> str | None:
    """The option label (A-J, or 1-9 for ARC rows numbered that way) of a multiple-choice row, else None."""
    letter = _LETTER.match(ground_truth)
    if letter:
        return letter.group(1)
    digit = _DIGIT.match(ground_truth)
    if digit and any(name in data_source.lower() for name in _CHOICE_SOURCES):
        return digit.group(1)
    return None


def extract_choice(answer_text: str, numeric: bool = False) -> str | None:
    """The option the response commits to: the last match of the most explicit pattern that matches."""
    for pattern in _DIGIT_PATTERNS if numeric else _LETTER_PATTERNS:
        matches = pattern.findall(answer_text)
        if matches:
            return matches[-1].upper()
    return None


def _verify_math(answer_text: str, ground_truth: str) -> tuple[bool, str]:
    """Runs in a grader process, on its main thread."""
    from math_verify import parse, verify

    gold = parse("$" + ground_truth + "$")
    pred = parse(answer_text)
    extracted = str(pred[1]) if len(pred) > 1 else (str(pred[0]) if pred else "")
    return bool(verify(gold, pred)), extracted


class _GraderPool:
    """A lazily started process pool that is replaced when a task overruns its deadline."""

    def __init__(self, workers: int = 1):
        self.workers = workers
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _get(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # forkserver: never fork a multi-threaded Ray worker, and keep torch out of the children.
                context = multiprocessing.get_context("forkserver")
                self._pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context)
                atexit.register(self.close)
            return self._pool

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _discard(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def run(self, fn, *args, timeout_s: float):
        pool = self._get()
        future = pool.submit(fn, *args)
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            self._discard(pool)
            raise
        except concurrent.futures.process.BrokenProcessPool:
            self._discard(pool)
            raise


_GRADERS = _GraderPool(workers=int(os.environ.get("RELIFT_GRADER_PROCESSES", "1")))


def grade_math(answer_text: str, ground_truth: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[bool, str, str]:
    """(correct, extracted answer, status) with status one of ok / timeout / error."""
    try:
        correct, extracted = _GRADERS.run(_verify_math, answer_text, ground_truth, timeout_s=timeout_s)
        return correct, extracted, "ok"
    except concurrent.futures.TimeoutError:
        return False, "", "timeout"
    except Exception:  # a parser crash on a malformed answer is a wrong answer, not a failed run
        return False, "", "error"


@dataclass
class Grade:
    correct: bool
    extracted: str
    """The answer the grader read: an option label, or math-verify's parse of the answer text."""
    has_think_close: bool
    status: str
    """ok, no_think (no `</think>` while it is required), timeout or error."""


def grade(data_source: str, response: str, ground_truth: str, require_think: bool = True,
          timeout_s: float = DEFAULT_TIMEOUT_S) -> Grade:
    """Grade one response: the rule shared by the training reward and evaluation."""
    has_think_close = THINK_CLOSE in response
    answer_text = extract_answer_text(response, require_think)
    if answer_text is None:
        return Grade(False, "", has_think_close, "no_think")
    gold = choice_label(data_source, ground_truth)
    if gold is not None:
        extracted = extract_choice(answer_text, numeric=gold.isdigit()) or ""
        return Grade(extracted == gold, extracted, has_think_close, "ok")
    correct, extracted, status = grade_math(answer_text, ground_truth, timeout_s)
    return Grade(correct, extracted, has_think_close, status)


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict | None = None,
    require_think: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **_unused,
) -> dict:
    """veRL custom reward. `score` is the training reward (1 correct, 0 otherwise); `acc` the same as a float.

    Extra keys (logged by veRL per response): `has_think_close`, `timed_out`.
    """
    result = grade(data_source, solution_str, ground_truth, require_think, timeout_s)
    return {
        "score": float(result.correct),
        "acc": float(result.correct),
        "has_think_close": float(result.has_think_close),
        "timed_out": float(result.status == "timeout"),
    }
