import time

import pytest

from relift.reward import compute_score, extract_choice


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


def test_pathological_answer_returns_within_bound_and_grader_recovers():
    # sympy tries to evaluate the tower of powers; grading must give up at the bound, not hang.
    start = time.monotonic()
    result = compute_score("math", "</think> \\boxed{10^{10^{10^{10}}} + 1}", "9^{9^{9^{9}}}+1", timeout_s=2.0)
    elapsed = time.monotonic() - start
    assert result["timed_out"] == 1.0 and result["score"] == 0.0
    assert elapsed < 4.0
    assert score("</think> \\boxed{4}", "4") == 1.0  # the killed grader was replaced


def test_timeout_inside_a_thread():
    # veRL calls the reward from executor threads, where SIGALRM-based timeouts do not work.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(compute_score, "math", "</think> \\boxed{4}", "4")
        assert future.result(timeout=60)["score"] == 1.0
