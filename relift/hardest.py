"""Find the hardest questions of a rollout batch, those with no correct response among their n samples,
and the first correct response of every other question (replayed by relift.replay).

Pure numpy. Correctness is the reward's accuracy output compared with a threshold, so it does not
depend on how the reward is scaled or shifted (the reference compared floats with a hard-coded
"fail value" per reward version).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class GroupOutcome:
    hardest_rows: list[int]
    """For each hardest question, the index of its first response row (its prompt and demonstration)."""
    correct_rows: list[int]
    """For each question with a correct response, the row of its first correct response."""
    num_questions: int
    num_solved_all: int


def group_outcomes(uids: np.ndarray, acc: np.ndarray, correct_threshold: float) -> GroupOutcome:
    """uids: (N,) question id of each response; acc: (N,) accuracy of each response.

    A response is correct when acc >= correct_threshold. Questions keep their first-appearance order.
    """
    if len(uids) != len(acc):
        raise ValueError(f"{len(uids)} uids but {len(acc)} accuracies")
    first_row: dict[str, int] = {}
    first_correct: dict[str, int] = {}
    all_correct: dict[str, bool] = {}
    for row, (uid, a) in enumerate(zip(uids, np.asarray(acc, dtype=np.float64), strict=True)):
        correct = bool(a >= correct_threshold)
        first_row.setdefault(uid, row)
        all_correct[uid] = all_correct.get(uid, True) and correct
        if correct:
            first_correct.setdefault(uid, row)
    return GroupOutcome(
        hardest_rows=[first_row[uid] for uid in first_row if uid not in first_correct],
        correct_rows=[first_correct[uid] for uid in first_row if uid in first_correct],
        num_questions=len(first_row),
        num_solved_all=sum(all_correct.values()),
    )
