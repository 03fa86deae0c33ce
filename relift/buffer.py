"""Question-keyed stores of training items: the hardest-question buffer and the replay pool.

Free of veRL and Ray so that they can be unit-tested and checkpointed as plain Python data.

Semantics (ReLIFT, arXiv 2506.07527, for the buffer):
- keyed by question id: pushing a question that is already held refreshes it (moves it to the
  front) instead of storing a duplicate;
- newest first: `pop_newest(m)` takes the m most recently pushed items;
- optional cap: when full, the oldest items are dropped (and counted) to make room.

The replay pool (relift.replay) holds one correct response of the policy's own per question, in the same
kind of store, and is sampled from rather than drained.
"""

from __future__ import annotations

import dataclasses
import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Generic, TypeVar


@dataclass(frozen=True)
class HardQuestion:
    """One buffered question.

    prompt_ids: the question's prompt tokens, chat template applied, exactly as the rollout saw them.
    demonstration: the worked solution text to fine-tune on.
    """

    question_id: str
    prompt_ids: list[int]
    demonstration: str


@dataclass(frozen=True)
class CorrectResponse:
    """One response the policy sampled and the reward graded correct: replayed in supervised updates.

    prompt_ids, response_ids: the rollout's tokens; response_ids without the EOS that ended it.
    """

    question_id: str
    prompt_ids: list[int]
    response_ids: list[int]


Item = TypeVar("Item", HardQuestion, CorrectResponse)


class QuestionBuffer(Generic[Item]):
    def __init__(self, item_type: type[Item], capacity: int | None = None):
        if capacity is not None and capacity <= 0:
            raise ValueError(f"buffer capacity must be positive or None, got {capacity}")
        self.item_type = item_type
        self.capacity = capacity
        # Insertion order = age: the last item is the newest.
        self._items: OrderedDict[str, Item] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, question_id: str) -> bool:
        return question_id in self._items

    def push(self, item: Item) -> None:
        self._items.pop(item.question_id, None)
        self._items[item.question_id] = item
        self._evict()

    def _evict(self) -> None:
        if self.capacity is not None:
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
                self.evicted += 1

    def pop_newest(self, m: int) -> list[Item]:
        """Remove and return the m newest items, newest first."""
        if m > len(self._items):
            raise ValueError(f"asked for {m} items, the buffer holds {len(self._items)}")
        return [self._items.popitem(last=True)[1] for _ in range(m)]

    def sample(self, k: int, rng: random.Random) -> list[Item]:
        """k distinct items drawn uniformly (left in place), or all of them when fewer are held."""
        items = list(self._items.values())
        return rng.sample(items, min(k, len(items)))

    def state_dict(self) -> dict[str, Any]:
        return {"evicted": self.evicted, "items": [dataclasses.asdict(item) for item in self._items.values()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the items and the eviction count; the capacity stays the configured one (a checkpoint
        holding more items than it keeps the newest)."""
        self.evicted = state["evicted"]
        self._items = OrderedDict((item["question_id"], self.item_type(**item)) for item in state["items"])
        self._evict()
