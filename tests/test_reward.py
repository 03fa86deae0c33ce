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
    [("so \\boxed{C}", "C"), ("ANSWER: B", "B"), ("I pick (D) here", "D"), ("the answer is A.", "A"),
     ("no idea", None)],
)
def test_choice_extraction(text, expected):
    assert extract_choice(text) == expected


def test_multiple_choice_rows():
    assert score("</think> ANSWER: C", "C", data_source="gpqa") == 1.0
    assert score("</think> ANSWER: B", "C", data_source="gpqa") == 0.0
    assert score("</think> The answer is \\boxed{2}", "2", data_source="arc_c") == 1.0
    assert score("</think> The answer is (3)", "2", data_source="arc_c") == 0.0


def graded(answer: str, ground_truth: str, data_source: str) -> float:
    """The score of an answer after a think block, as a policy's response reaches the reward."""
    return compute_score(data_source, "<think>\nreasoning\n</think>\n\n" + answer, ground_truth, None)["score"]


@pytest.mark.parametrize(
    "answer, label",
    [
        ("**Answer:** C", "C"),
        ("ANSWER: D", "D"),
        ("Answer: **B**", "B"),
        ("**Answer: A**", "A"),
        ("The answer is (B).", "B"),
        ("Therefore, the final answer is: (D)", "D"),
        ("The correct answer is option B.", "B"),
        ("the correct choice is **B**", "B"),
        ("The answer would be C.", "C"),
        ("Answer: $D$", "D"),
        ("The answer is \\(A\\).", "A"),
        ("Option D", "D"),
        ("So option A is correct.", "A"),
        ("\\boxed{C}", "C"),
        ("$\\boxed{\\text{B}}$", "B"),
        ("\\boxed{(A)}", "A"),
        ("\\boxed{C) Planetary days will become shorter.}", "C"),
        ("\\boxed{\\text{(D) 10^-9 eV}}", "D"),
        ("**Answer:** C) Planetary days will become shorter.", "C"),
        ("After weighing them all:\n\n**B**", "B"),
        ("C", "C"),
        ("(A)", "A"),
        ("Answer: I", "I"),
        ("The answer is C, not D.", "C"),
        ("The answer is A because the density drops.", "A"),
        ("Answer: I since the others fail.", "I"),
        ("\\boxed{\\text{Option C}}", "C"),
        ("Final answer - B", "B"),
        ("**Final Answer** — (D)", "D"),
        ("Answer – C) the option's text", "C"),
        ("answer -> A", "A"),
        ("Answer => I", "I"),
        ("Answer → B", "B"),
    ],
)
def test_option_label_in_the_forms_models_write(answer, label):
    assert graded(answer, label, "gpqa") == 1.0
    other = "B" if label != "B" else "C"
    assert graded(answer, other, "gpqa") == 0.0


@pytest.mark.parametrize(
    "answer",
    [
        "Answer: Actually I am not sure which option is right.",
        "Answer: A lot depends on the assumptions.",
        "Answer: I think it is the second one.",
        "Answer: I'm not sure.",
        "The answer is a bit unclear.",
        "The answer is all of the above.",
        "answer is a",
        "Based on the data, it is clear.",
        "Actually, none of them.",
        "A lot of evidence points both ways.",
        "I would rather not guess.",
        "The option I chose earlier was wrong.",
        "ANSWER: b",
        "\\boxed{Actually}",
        "\\boxed{A lot}",
        "The answer-key lists A lot of options.",
        "Final answer - I think it is the second one.",
    ],
)
@pytest.mark.parametrize("label", ["A", "B", "I"])
def test_no_option_label_is_read_out_of_a_word(answer, label):
    assert graded(answer, label, "gpqa") == 0.0


@pytest.mark.parametrize(
    "answer, label", [("The answer is 2.", "2"), ("\\boxed{3}", "3"), ("Option 4", "4"), ("(1)", "1")]
)
def test_numbered_option_labels(answer, label):
    assert graded(answer, label, "arc_c") == 1.0
    assert graded(answer, "1" if label != "1" else "2", "arc_c") == 0.0


@pytest.mark.parametrize("answer", ["Answer: 2.5", "Answer: 25", "Answer: -2", "The answer is 2,000."])
def test_numbered_option_label_is_not_read_out_of_a_number(answer):
    assert graded(answer, "2", "arc_c") == 0.0


@pytest.mark.parametrize(
    "answer",
    [
        "Answer: " + " " * 100_000 + "x",
        "answer:" + "*" * 100_000,
        "\n" * 100_000 + "x",
        " \n" * 50_000,
        "\\boxed{" + " " * 100_000,
        "option" + "\t" * 100_000 + "x",
        "the answer" + " a" * 50_000,
        "answer is " * 10_000,
    ],
)
def test_option_extraction_is_linear_in_the_answer(answer):
    """The answer text is unbounded: a pattern whose adjacent quantifiers could share characters would take
    minutes here."""
    start = time.monotonic()
    assert extract_choice(answer) is None and extract_choice(answer, numeric=True) is None
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize(
    "answer, ground_truth",
    [
        ("\\boxed{17.5\\%}", "17.5%"),
        ("\\boxed{17.5}", "17.5%"),  # the same number without the sign
        ("\\boxed{0.175}", "17.5%"),  # its fraction
        ("\\boxed{\\frac{7}{40}}", "17.5%"),
        ("\\boxed{62.5\\%}", "62.5%"),
        ("\\boxed{12\\%}", "12\\%"),
        ("\\boxed{12.5 \\%}", "12.5\\%"),
        ("\\boxed{0.125}", "12.5\\%"),
        ("$5\\%$", "5\\%"),
        ("The answer is 5%.", "5\\%"),
        ("\\boxed{50}", "50\\%"),
        ("\\boxed{0.5}", "50\\%"),
        ("\\boxed{50\\%}", "50"),
        ("\\boxed{50\\%}", "\\frac{1}{2}"),
        ("\\boxed{8\\%}", "$8 \\%$"),  # a ground truth already in $...$
        ("\\boxed{0.08}", "$8 \\%$"),
        ("\\boxed{8}", "$8 \\%$"),
    ],
)
def test_percentages(answer, ground_truth):
    assert graded(answer, ground_truth, "olympiad_bench") == 1.0


@pytest.mark.parametrize(
    "answer, ground_truth",
    [
        ("\\boxed{18\\%}", "17.5%"),
        ("\\boxed{1.75}", "17.5%"),
        ("\\boxed{0.0175}", "17.5%"),
        ("\\boxed{175}", "17.5%"),
        ("\\boxed{5}", "50\\%"),
        ("\\boxed{0.05}", "50"),
        ("\\boxed{9\\%}", "$8 \\%$"),
    ],
)
def test_wrong_percentages(answer, ground_truth):
    assert graded(answer, ground_truth, "olympiad_bench") == 0.0


def test_ground_truth_already_in_dollars_is_not_wrapped_again():
    assert graded("\\boxed{\\frac{1}{2}}", "$\\frac{1}{2}$", "olympiad_bench") == 1.0
    assert graded("\\boxed{-1, 2, -2}", "$-1$,$2$,$-2$", "olympiad_bench") == 1.0
    assert graded("\\boxed{3}", "$8 \\%$", "olympiad_bench") == 0.0


@pytest.mark.parametrize(
    "answer, ground_truth",
    [
        ("The answer is $9{,}500.", "9500"),
        ("The answer is $9{,}500$.", "9500"),
        ("The answer is 1{,}234{,}567.", "1234567"),
        ("\\boxed{1{,}234{,}567}", "1234567"),
        ("The answer is $12\\,400$.", "12400"),
        ("\\boxed{12\\,400}", "12400"),
        ("\\boxed{12 400}", "12400"),
        ("The answer is 12 400.", "12400"),
        ("\\boxed{12,400}", "12400"),
        ("\\boxed{12400}", "12\\,400"),  # the ground truth's separators too
        ("\\boxed{-3\\,000\\,000}", "-3000000"),
        ("\\boxed{12\\,400.5}", "12400.5"),
        ("\\boxed{2, 3}", "(2, 3)"),
        ("\\boxed{2500, 7500}", "2500,7500"),
    ],
)
def test_thousands_separators(answer, ground_truth):
    assert graded(answer, ground_truth, "math") == 1.0


@pytest.mark.parametrize(
    "answer, ground_truth",
    [
        ("The answer is $9{,}500.", "9"),
        ("\\boxed{2 3}", "23"),  # not three digits after the space: not a separator
        ("\\boxed{2 3}", "2, 3"),
        ("\\boxed{1 2 3}", "123"),
        ("\\boxed{12\\,40}", "1240"),
        ("\\boxed{12 4000}", "124000"),
        ("\\boxed{x^2 100}", "x^{2100}"),  # nor a digit right after ^ (x squared, then 100)
    ],
)
def test_what_is_not_a_thousands_separator(answer, ground_truth):
    assert graded(answer, ground_truth, "math") == 0.0


def test_separators_are_removed_before_the_bounds():
    assert grade("math", "</think> \\boxed{9^{999\\,999\\,999}}", "1").status == "rejected"
    assert grade("math", "</think> \\boxed{100{,}000{,}000!}", "1").status == "rejected"


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


@pytest.mark.parametrize(
    "answer", ["\\boxed{2^{2^n}}", "\\boxed{(n+1)!}", "\\boxed{\\frac{10!}{2^{5}}}", "\\boxed{2^{100}}"])
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
        first = threads.submit(pool.verify, [slow(4)], ["1"], budget_s=30.0, timeout_s=0.5)
        time.sleep(0.1)
        second = threads.submit(pool.verify, ["\\boxed{4}"], ["4"], budget_s=1.0, timeout_s=30.0)
        with pytest.raises(TimeoutError):
            first.result(timeout=30)
        assert second.result(timeout=30)["correct"] is True


def test_grader_failure_is_an_error_not_a_wrong_answer():
    code = ("from relift.reward import compute_score, grade\n"
            "print(grade('math', '</think> \\\\boxed{4}', '4').status)\n"
            "flags = compute_score('math', '</think> \\\\boxed{4}', '4')\n"
            "print(flags['score'], flags['sent_to_grader'], flags['grader_failed'])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "RELIFT_GRADER_PROCESSES": "0"})
    assert result.stdout.split("\n")[:2] == ["error", "0.0 1.0 1.0"], result.stdout + result.stderr[-2000:]
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
