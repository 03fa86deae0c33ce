"""The runaway guard: hold supervised updates back while the policy is getting worse. Pure Python.

ReLIFT's trigger counts hardest questions. When supervised updates damage what the policy could do,
more questions become hardest, the buffer fills faster and the next update comes sooner: a feedback
loop that ends in a supervised update after every RL step, the schedule the paper's ablation shows
collapsing (arXiv 2506.07527: 23.8 average against 52.6). The guard breaks the loop on the signal that
starts it: while the share of hardest questions in a batch is more than `max_rise` above its lowest
value over the previous `window` steps, supervised updates wait and RL, which still learns from the
questions the policy solves sometimes, runs alone. Questions keep entering the buffer meanwhile. A rise
that lasts `window` steps becomes the new reference, so the guard delays updates and never stops them
for good.
"""

from __future__ import annotations

from collections import deque


class RunawayGuard:
    def __init__(self, max_rise: float | None, window: int):
        """max_rise: allowed rise of the hardest share (a fraction of the batch's questions) over its recent
        low; None turns the guard off. window: steps the recent low is taken over (>= 1)."""
        if window < 1:
            raise ValueError(f"guard window must be >= 1 step, got {window}")
        self.max_rise = max_rise
        self._recent: deque[float] = deque(maxlen=window)

    def allows(self, hardest_share: float) -> bool:
        """Record this step's hardest share; whether supervised updates may run after this step."""
        allowed = self.max_rise is None or not self._recent or hardest_share <= min(self._recent) + self.max_rise
        self._recent.append(hardest_share)
        return allowed

    def state_dict(self) -> dict:
        return {"recent": list(self._recent)}

    def load_state_dict(self, state: dict) -> None:
        self._recent.clear()
        self._recent.extend(state["recent"])
