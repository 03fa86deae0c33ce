import concurrent.futures
import os
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from relift.grader import GraderPool
from relift.reward import (
    ANSWER_CHARS,
    compute_score,
    extract_choice,
    grade,
    grade_math,
    graded_slice,
    grading_health,
    rejection,
)


def score(solution: str, ground_truth: str, data_source: str = "math", **kwargs) -> float:
    return compute_score(data_source, solution, ground_truth, **kwargs)["score"]


def test_correct_answer_after_think():
    assert score("reasoning </think> The answer is \\boxed{\\frac{1}{2}}.", "0.5") == 1.0


def test_wrong_answer():
    assert score("reasoning </think> The answer is \\boxed{3}.", "4") == 0.0


def test_missing_think_close_scores_zero_when_required():
    assert score("The answer is \\boxed{4}.", "4") == 0.0
    assert score("The answer is \\boxed{4}.", "4", require_think=False) == 1.0


def test_only_text_after_think_is_graded():
    assert score("\\boxed{4} maybe... </think> so \\boxed{5}", "4") == 0.0


@pytest.mark.parametrize(
    "answer, ground_truth",
    [
        ("\\boxed{0.5}", "\\frac{1}{2}"),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("\\boxed{[1, 2)}", "[1,2)"),
        ("\\boxed{142}", "142.0"),
    ],
)
def test_math_equivalences(answer, ground_truth):
    assert score(f"</think> {answer}", ground_truth) == 1.0


@pytest.mark.parametrize(
    "text, expected",
    [("so \\boxed{C}", "C"), ("ANSWER: B", "B"), ("I pick (D) here", "D"), ("the answer is A.", "A"), ("no idea", None)],
)
def test_choice_extraction(text, expected):
    assert extract_choice(text) == expected


def test_multiple_choice_rows():
    assert score("</think> ANSWER: C", "C", data_source="gpqa") == 1.0
    assert score("</think> ANSWER: B", "C", data_source="gpqa") == 0.0
    assert score("</think> The answer is \\boxed{2}", "2", data_source="arc_c") == 1.0
    assert score("</think> The answer is (3)", "2", data_source="arc_c") == 0.0


@pytest.mark.parametrize(
    "answer",
    [
        "\\boxed{10^{10^{10^{10}}} + 1}",  # sympy would compute the tower in C, beyond any timer
        "\\boxed{(10^{10})!}",
        "\\boxed{9^{9999999999}}",
        "\\boxed{123456!}",
        "\\boxed{" + "{" * 20 + "1" + "}" * 20 + "}",
        "\\boxed{" + "7" * 600 + "}",
    ],
)
def test_pathological_answers_are_rejected_before_math_verify(answer):
    start = time.monotonic()
    result = grade("math", f"</think> {answer}", "9^{9^{9^{9}}}+1")
    assert result.status == "rejected" and not result.correct
    assert time.monotonic() - start < 0.1


@pytest.mark.parametrize("answer", ["\\boxed{2^{2^n}}", "\\boxed{(n+1)!}", "\\boxed{\\frac{10!}{2^{5}}}", "\\boxed{2^{100}}"])
def test_ordinary_powers_and_factorials_are_not_rejected(answer):
    assert rejection(graded_slice(answer)) is None


def test_only_the_last_boxed_answer_is_graded():
    assert graded_slice("\\boxed{1} then \\boxed{\\frac{1}{2}} done") == "\\boxed{\\frac{1}{2}}"
    assert graded_slice("x" * 1000 + " 42") == "x" * (ANSWER_CHARS - 3) + " 42"
    assert graded_slice("\\boxed{" + "1" * ANSWER_CHARS + "}") is not None
    assert graded_slice("\\boxed{" + "1" * (ANSWER_CHARS + 1) + "}") is None
    assert score("</think> " + "\\boxed{x}" * 20_000 + " \\boxed{4}", "4") == 1.0


def slow(i: int) -> str:
    """Admitted, and sympy takes 0.2-0.8 s on it; distinct per i, so that no grader has it cached."""
    return "\\boxed{" + f"\\sum_{{k={i}}}^{{\\infty}} " * 20 + "k}"


def test_answer_over_its_budget_times_out_inside_the_grader():
    status = grade_math(slow(1), "1", budget_s=0.01)[2]
    assert status == "timeout"
    assert score("</think> \\boxed{4}", "4") == 1.0


def test_grader_that_overruns_the_caller_is_killed_and_replaced():
    start = time.monotonic()
    assert grade_math(slow(2), "1", budget_s=30.0, timeout_s=0.05)[2] == "timeout"
    assert time.monotonic() - start < 1.0
    assert score("</think> \\boxed{4}", "4") == 1.0


def test_a_caller_waiting_for_a_grader_that_gets_killed_is_served():
    """One grader, two callers: the first one's grader overruns and is killed while the second waits."""
    pool = GraderPool(processes=1)
    with concurrent.futures.ThreadPoolExecutor(2) as threads:
        first = threads.submit(pool.verify, slow(4), "1", budget_s=30.0, timeout_s=0.5)
        time.sleep(0.1)
        second = threads.submit(pool.verify, "\\boxed{4}", "4", budget_s=1.0, timeout_s=30.0)
        with pytest.raises(TimeoutError):
            first.result(timeout=30)
        assert second.result(timeout=30)["correct"] is True


def test_grader_failure_is_an_error_not_a_wrong_answer():
    code = "from relift.reward import grade; print(grade('math', '</think> \\\\boxed{4}', '4').status)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "RELIFT_GRADER_PROCESSES": "0"})
    assert result.stdout.strip() == "error"
    assert "[relift] grader process failed: RELIFT_GRADER_PROCESSES=0" in result.stderr


def test_grading_health_counts_per_step():
    extra = {"acc": np.zeros(4), "timed_out": np.array([1.0, 0, 0, 0]), "grader_failed": np.array([0, 1.0, 1.0, 0])}
    assert grading_health(extra) == {"grader/timeouts": 1, "grader/failures": 2}
    flags = [compute_score(source, response, truth) for source, response, truth in
             [("math", "</think> \\boxed{4}", "4"), ("gpqa", "</think> ANSWER: C", "C"), ("math", "no think", "4")]]
    assert [f["sent_to_grader"] for f in flags] == [1.0, 0.0, 0.0]


def test_graders_end_with_their_parent():
    """kill -9 of the process that grades: its grader goes too, by the parent-death signal (a sleeper keeps
    the grader's stdin open, so EOF cannot be what ends it), although the thread that asked has ended."""
    code = (
        "import subprocess, threading, time; from relift import reward\n"
        "t = threading.Thread(target=reward.grade_math, args=('\\\\boxed{4}', '4')); t.start(); t.join()\n"
        "grader = next(g for g in reward._GRADERS._idle.queue if g is not None).process\n"
        "holder = subprocess.Popen(['sleep', '60'], pass_fds=[grader.stdin.fileno()])\n"
        "print(grader.pid, holder.pid, flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    grader, holder = (psutil.Process(int(pid)) for pid in parent.stdout.readline().split())
    try:
        parent.kill()
        parent.wait()
        grader.wait(timeout=10)  # psutil.TimeoutExpired if it outlived its parent
    finally:
        holder.kill()


def test_timeout_inside_a_thread():
    # veRL calls the reward from executor threads, where SIGALRM-based timeouts do not work.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(compute_score, "math", "</think> \\boxed{4}", "4")
        assert future.result(timeout=60)["score"] == 1.0
