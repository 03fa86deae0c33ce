"""The hardest-question buffer: questions that every sampled response got wrong, with their demonstration.

Free of veRL and Ray so that it can be unit-tested and checkpointed as plain Python data.

Semantics (ReLIFT, arXiv 2506.07527):
- keyed by question id: pushing a question that is already buffered refreshes it (moves it to the
  front) instead of storing a duplicate;
- newest first: `pop_newest(m)` takes the m most recently pushed questions;
- optional cap: when full, the oldest questions are dropped (and counted) to make room.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HardQuestion:
    """One buffered question.

    prompt_ids: the question's prompt tokens, chat template applied, exactly as the rollout saw them.
    demonstration: the worked solution text to fine-tune on.
    """

    question_id: str
    prompt_ids: list[int]
    demonstration: str


class HardQuestionBuffer:
    def __init__(self, capacity: int | None = None):
        if capacity is not None and capacity <= 0:
            raise ValueError(f"buffer capacity must be positive or None, got {capacity}")
        self.capacity = capacity
        # Insertion order = age: the last item is the newest.
        self._items: OrderedDict[str, HardQuestion] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, question_id: str) -> bool:
        return question_id in self._items

    def push(self, question: HardQuestion) -> None:
        self._items.pop(question.question_id, None)
        self._items[question.question_id] = question
        if self.capacity is not None:
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
                self.evicted += 1

    def pop_newest(self, m: int) -> list[HardQuestion]:
        """Remove and return the m newest questions, newest first."""
        if m > len(self._items):
            raise ValueError(f"asked for {m} questions, the buffer holds {len(self._items)}")
        return [self._items.popitem(last=True)[1] for _ in range(m)]

    def state_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "evicted": self.evicted,
            "items": [
                {"question_id": q.question_id, "prompt_ids": q.prompt_ids, "demonstration": q.demonstration}
                for q in self._items.values()
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.capacity = state["capacity"]
        self.evicted = state["evicted"]
        self._items = OrderedDict((item["question_id"], HardQuestion(**item)) for item in state["items"])
