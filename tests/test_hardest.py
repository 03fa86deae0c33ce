import numpy as np

from relift.hardest import group_outcomes


def test_all_wrong_questions_are_hardest():
    uids = np.array(["a", "a", "b", "b", "c", "c"], dtype=object)
    acc = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    outcome = group_outcomes(uids, acc, correct_threshold=0.5)
    assert outcome.hardest_rows == [0]
    assert outcome.correct_rows == [2, 4]
    assert outcome.num_questions == 3 and outcome.num_solved_all == 1


def test_threshold_not_float_equality():
    # A shifted reward scale (e.g. -0.5 for wrong) must not change what "correct" means.
    uids = np.array(["a", "a", "b", "b"], dtype=object)
    acc = np.array([0.2, 0.49, 0.49, 0.51])
    assert group_outcomes(uids, acc, correct_threshold=0.5).hardest_rows == [0]


def test_interleaved_rows_keep_first_row_per_question():
    uids = np.array(["x", "y", "x", "y"], dtype=object)
    acc = np.array([0, 0, 0, 1])
    outcome = group_outcomes(uids, acc, correct_threshold=0.5)
    assert outcome.hardest_rows == [0] and outcome.correct_rows == [3]
