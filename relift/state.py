"""Everything of a ReLIFT run that must survive a resume, in one object. Pure Python.

`RunState.state_dict()` is what `relift_state.json` holds in each checkpoint folder (written before veRL
marks the folder as the latest): the hardest-question buffer, the replay pools, the runaway guard's
recent shares, the counters, the demonstrations used, the best validation score so far, the questions
pending at the teacher and the run's compute totals.
"""

from __future__ import annotations

from typing import Any, Protocol

from omegaconf import DictConfig

from relift.accounting import Account
from relift.buffer import CorrectResponse, HardQuestion, QuestionBuffer
from relift.guard import RunawayGuard


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class RunState:
    def __init__(self, relift: DictConfig, account: Account, teacher: Stateful | None = None):
        """relift: the `relift` section of the configuration (capacities and the guard's settings; a resume keeps
        them, not the checkpoint's). teacher: the teacher queue, whose pending questions are saved, or None."""
        self.buffer = QuestionBuffer(HardQuestion, capacity=relift.buffer_capacity)
        self.replay = QuestionBuffer(CorrectResponse, capacity=relift.replay.pool_size)
        """Correct responses the policy sampled itself."""
        self.taught = QuestionBuffer(CorrectResponse, capacity=relift.replay.pool_size)
        """Demonstrations a supervised update has trained on."""
        self.guard = RunawayGuard(relift.guard.max_rise, relift.guard.window)
        self.counters = {"sft_updates": 0, "hardest_seen": 0, "hardest_without_demo": 0, "demos_truncated": 0}
        self.demos_used: set[str] = set()
        """Question ids whose demonstration a supervised update has trained on."""
        self.best_score: float | None = None
        self.account = account
        self.teacher = teacher

    def state_dict(self) -> dict[str, Any]:
        return {
            "buffer": self.buffer.state_dict(),
            "replay": self.replay.state_dict(),
            "taught": self.taught.state_dict(),
            "guard": self.guard.state_dict(),
            "counters": dict(self.counters),
            "demos_used": sorted(self.demos_used),
            "best_score": self.best_score,
            "teacher": self.teacher.state_dict() if self.teacher is not None else None,
            "account": self.account.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint's state. Parts an older relift did not save (the replay pool, the guard, the
        compute totals) start empty."""
        self.buffer.load_state_dict(state["buffer"])
        for name in ("replay", "taught", "guard", "account"):
            if state.get(name) is not None:
                getattr(self, name).load_state_dict(state[name])
        self.counters.update(state["counters"])
        self.demos_used = set(state["demos_used"])
        self.best_score = state.get("best_score")
        if self.teacher is not None and state.get("teacher"):
            self.teacher.load_state_dict(state["teacher"])
