"""The plan of ReLIFT's supervised updates: what update k trains on, at which lr, in which micro-batches.

Pure Python: no veRL, no Ray, no torch. `relift.interleave` follows the plan at every update and
`relift.main` prints it for DRY_RUN=1 from the same functions, so the printed plan is the trained one.

Update k (0-based, counted over the run) trains on

    M new demonstrations (relift.sft_trigger_size), the M newest questions of the buffer
  + own    of the policy's earlier correct responses (relift.replay.share), weighing `anchor_weight(k)`
  + taught of the demonstrations earlier updates trained on (relift.replay.taught_share), growing over
           relift.replay.taught_warmup_updates while own responses fill in (`replay_draws`)

at lr `relift.optim.lr x warmup_fraction(k, relift.optim.warmup_updates)`, one optimizer step over the
whole batch in micro-batches chosen by `micro_batching`. Pools that hold fewer than asked give fewer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class SupervisedSettings:
    """The keys a supervised update follows, read from the configuration by `relift.checks.supervised_settings`
    (relift_trainer.yaml documents each and holds its default; nothing here repeats one)."""

    new: int
    """M, relift.sft_trigger_size: new demonstrations per update (a multiple of `ranks`)."""
    max_updates_per_step: int
    ranks: int
    """The actor's data-parallel size: GPUs / Ulysses size."""
    largest_micro_batch: int | None
    """The most sequences per forward on each rank; None: micro-batches cut by tokens (dynamic batch sizes)."""
    own: int
    """The policy's own correct responses per update, relift.replay.share of the batch (`replayed_counts`)."""
    taught: int
    """Demonstrations taught before per update, relift.replay.taught_share of the batch."""
    taught_warmup_updates: int
    lr: float
    warmup_updates: int
    anchor_weight: float
    anchor_decay_updates: int
    max_target_len: int
    correct_threshold: float
    seed: int
    """The replay draws' seed (data.seed): update k draws with seed "<seed>-<k>", so a resume draws the same."""

    @property
    def replays_own(self) -> bool:
        """Whether own correct responses are kept: drawn from the first update, or filling in for the taught
        ones during their warm-up."""
        return bool(self.own or (self.taught and self.taught_warmup_updates))


def replayed_counts(new: int, own_share: float, taught_share: float, ranks: int) -> tuple[int, int]:
    """(own, taught): replayed responses per update of `new` new demonstrations, each source's share of the
    whole batch, rounded down to a multiple of `ranks`. Shares that leave no room for new demonstrations
    (sum >= 1) or are negative give (0, 0): relift.checks refuses them."""
    left = 1 - own_share - taught_share
    if left <= 0 or min(own_share, taught_share) < 0:
        return 0, 0
    return tuple(int(new * share / left) // ranks * ranks for share in (own_share, taught_share))


def warmup_fraction(update: int, warmup: int) -> float:
    """The linear warm-up factor of supervised update `update` (0-based) over `warmup` updates (0: none, 1.0),
    shared by the supervised lr and the taught-replay share: (update + 1) / warmup, at most 1."""
    return min(1.0, (update + 1) / warmup) if warmup else 1.0


def replay_draws(own: int, taught: int, update: int, warmup: int, ranks: int) -> tuple[int, int]:
    """How many of the policy's own correct responses and of the demonstrations taught before supervised
    update `update` (0-based) replays, out of the configured `own` and `taught` per update (multiples of
    `ranks`). Over the first `warmup` updates (0: none) the taught ones grow linearly, rounded down to a
    multiple of `ranks`, and own responses fill the rest, so the batch size stays own + taught. Why:
    demonstrations taught before learn new skills fast, but early in a run, while the model cannot yet
    tell the tasks apart, they also cut what it knew (bench/README.md)."""
    grown = int(taught * warmup_fraction(update, warmup)) // ranks * ranks
    return own + taught - grown, grown


def anchor_weight(update: int, weight: float, decay_updates: int) -> float:
    """The loss weight of the policy's own replayed responses, per token and relative to a demonstration's, in
    supervised update `update` (0-based): `weight` at update 0, falling linearly to 1 at update
    `decay_updates` and 1 after it (0: `weight` throughout). Why: the first supervised updates teach a new
    procedure before the model tells the new questions from those it knew, and it applies the new one
    everywhere; a heavy anchor holds what it knew through that phase, a light one later lets the new
    skills come as fast as without it (bench/README.md)."""
    if not decay_updates:
        return weight
    return max(1.0, weight - (weight - 1.0) * update / decay_updates)


def micro_batching(new: int, replayed: int, ranks: int, largest: int | None) -> tuple[int, int | None]:
    """How a supervised batch of `new` demonstrations plus up to `replayed` replayed responses splits over
    `ranks` data-parallel ranks and into micro-batches of at most `largest` sequences per rank (None:
    dynamic batch sizes, micro-batches cut by tokens). `new` must be a multiple of `ranks`.

    Returns (replayed responses to keep, micro-batch size per rank or None). Each rank's share of n
    sequences runs in n // m equal micro-batches of m <= `largest` (veRL's prepare_micro_batches needs an
    exact split), cutting the n % m (< m) left over from the replayed responses: m is the size with the
    fewest forwards plus responses cut, the larger on a tie, among those the replayed responses can pay
    for. So 40 with at most 32 runs as 2 x 20 (not 32, cutting 8), and 7 with at most 2 as 3 x 2.

    Raises ValueError when `new` does not split over `ranks`.
    """
    if new % ranks:
        raise ValueError(f"{new} new demonstrations do not split over {ranks} data-parallel ranks")
    kept = replayed // ranks * ranks
    if largest is None:
        return kept, None
    share, spare = (new + kept) // ranks, kept // ranks
    micro = min((m for m in range(1, min(largest, share) + 1) if share % m <= spare),
                key=lambda m: (share // m + share % m, -m))
    return kept - share % micro * ranks, micro


@dataclass(frozen=True)
class UpdatePlan:
    """What supervised update `update` (0-based) trains on once its pools are drawn."""

    update: int
    new: int
    own: int
    """Own correct responses replayed, after the cut to whole micro-batches."""
    taught: int
    """Taught demonstrations replayed, after the cut (short pools cut these first)."""
    micro_batch: int | None
    """Sequences per forward on each rank; None: cut by tokens."""
    lr: float
    anchor_weight: float

    @property
    def size(self) -> int:
        return self.new + self.own + self.taught


def replay_asked(settings: SupervisedSettings, update: int) -> tuple[int, int]:
    """(own, taught) that update `update` draws from its pools, before the cut to whole micro-batches."""
    return replay_draws(settings.own, settings.taught, update, settings.taught_warmup_updates, settings.ranks)


def plan_update(settings: SupervisedSettings, update: int, own_drawn: int, taught_drawn: int) -> UpdatePlan:
    """The plan of update `update` when its pools gave `own_drawn` and `taught_drawn` responses (at most what
    `replay_asked` asked): whole micro-batches per rank, cutting taught responses first, then own ones."""
    kept, micro = micro_batching(settings.new, own_drawn + taught_drawn, settings.ranks,
                                 settings.largest_micro_batch)
    own = min(own_drawn, kept)
    return UpdatePlan(
        update=update, new=settings.new, own=own, taught=kept - own, micro_batch=micro,
        lr=settings.lr * warmup_fraction(update, settings.warmup_updates),
        anchor_weight=anchor_weight(update, settings.anchor_weight, settings.anchor_decay_updates),
    )


def describe(settings: SupervisedSettings) -> list[str]:
    """The supervised plan as DRY_RUN=1 prints it: the first update and the first one past every warm-up,
    with full pools (a run's first updates replay fewer while its pools fill)."""
    # the lr and the taught share reach their values at update warmup - 1, the anchor weight 1 at decay_updates
    settled = max(settings.warmup_updates - 1, settings.taught_warmup_updates - 1, settings.anchor_decay_updates, 0)
    first, later = (plan_update(settings, k, *replay_asked(settings, k)) for k in (0, settled))
    lines = []
    for plan in [first] if dataclasses.replace(later, update=0) == first else [first, later]:
        micro = "by tokens (dynamic batching)" if plan.micro_batch is None else f"of {plan.micro_batch}"
        when = "update 1" if plan.update == 0 else f"from update {plan.update + 1}"
        lines.append(
            f"{when:<17} {plan.new} new demonstrations + {plan.own} own responses (weight {plan.anchor_weight:g}) "
            f"+ {plan.taught} taught demonstrations = {plan.size // settings.ranks} per GPU, micro-batches {micro}, "
            f"lr {plan.lr:g}"
        )
    lines.append(f"at most {settings.max_updates_per_step} update(s) per step, when the buffer holds {settings.new} "
                 "questions")
    return lines
