"""The bench's budget rules, fixed before its runs: when an SFT stage stops, how many RL steps bring an arm
to a compute budget, and what an SFT run stopped early cost. Pure Python: no veRL, no torch.
"""

from __future__ import annotations

import math

from relift.accounting import Account

# Where an SFT run stops: the first epoch that gains less than a point of validation accuracy over the best
# before it, at most SFT_MAX_EPOCHS (the reference trained its SFT baseline 3 epochs; a toy learns faster
# per epoch, so 5 leaves room to plateau).
SFT_MAX_EPOCHS = 5
SFT_MIN_GAIN = 0.01
# An arm with an RL stage is within this share of its compute budget, by the FLOP estimate.
COMPUTE_TOLERANCE = 0.10
# The fields of relift.accounting.Account that grow with every epoch of SFT.
SFT_PER_EPOCH_FIELDS = ("steps", "wall_s", "sft_wall_s", "sft_updates", "sft_tokens_trained", "tokens_in_sft_updates")


def sft_stop(dev: list[float], min_gain: float = SFT_MIN_GAIN) -> tuple[int, int]:
    """(epochs trained, epoch kept) by the plateau rule, from `dev[i]`, the validation accuracy after epoch
    i + 1: training stops after the first epoch that is not `min_gain` above every epoch before it (or after
    the last one given), and keeps the epoch with the highest accuracy so far (the earliest of equals).
    Applied to the epochs of a run that saved each, it gives what early stopping during that run would
    have. Raises ValueError without epochs."""
    if not dev:
        raise ValueError("sft_stop needs the validation accuracy of at least one epoch")
    trained = len(dev)
    for epoch in range(1, len(dev)):
        if dev[epoch] < max(dev[:epoch]) + min_gain:
            trained = epoch + 1
            break
    kept = max(range(trained), key=lambda e: (dev[e], -e))
    return trained, kept + 1


def sft_until(summary: dict, epochs_trained: int, epochs_run: int) -> dict:
    """The compute summary (relift.accounting's summary.json) of an SFT run of `epochs_run` epochs cut to its
    first `epochs_trained`: every epoch trains the same rows, so the per-epoch fields scale by their share,
    and the derived ones (FLOPs, hours) follow."""
    account = Account.from_summary(summary)
    for name in SFT_PER_EPOCH_FIELDS:
        value = getattr(account, name) * epochs_trained / epochs_run
        setattr(account, name, round(value) if isinstance(getattr(account, name), int) else value)
    return account.summary()


def steps_to_budget(steps: int, flops: float, budget: float) -> int:
    """RL steps in all after which a run that spent `flops` in `steps` steps has spent `budget`, at its mean
    rate so far (never fewer than `steps`). Raises ValueError when nothing was spent."""
    if steps <= 0 or flops <= 0:
        raise ValueError(f"steps_to_budget needs a run that spent compute (steps {steps}, FLOPs {flops})")
    return steps + max(0, round((budget - flops) / (flops / steps)))


def first_leg_steps(budget_left: float, flops_per_step: float, share: float = 1 - COMPUTE_TOLERANCE) -> int:
    """RL steps of a first leg that spends about `share` of `budget_left` at an estimated `flops_per_step`,
    so that the second leg (steps_to_budget, at the measured rate) only lengthens the run. At least 1."""
    if budget_left <= 0 or flops_per_step <= 0:
        raise ValueError(f"no compute left for an RL stage (left {budget_left:.3g} FLOPs, {flops_per_step:.3g} a step)")
    return max(1, math.floor(share * budget_left / flops_per_step))


def within(flops: float, budget: float, tolerance: float = COMPUTE_TOLERANCE) -> float:
    """The margin of `flops` inside `budget` ± `tolerance`: >= 0 when inside (the room left to the nearer
    bound, as a share of the budget)."""
    return tolerance - abs(flops / budget - 1)
