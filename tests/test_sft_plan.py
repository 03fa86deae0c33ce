"""relift.sft_plan: what each supervised update trains on, and the DRY_RUN plan printed from the same code."""

import dataclasses

import pytest
from helpers import composed

from relift.checks import supervised_settings
from relift.sft_plan import (
    anchor_weight,
    describe,
    micro_batching,
    plan_update,
    replay_asked,
    replay_draws,
    replayed_counts,
    warmup_fraction,
)


@pytest.mark.parametrize(("update", "weight", "decay", "expected"), [
    (0, 16.0, 20, 16.0),  # the first update weighs the configured value
    (10, 16.0, 20, 8.5),  # halfway down to 1
    (20, 16.0, 20, 1.0),
    (35, 16.0, 20, 1.0),  # and 1 after the decay
    (35, 4.0, 0, 4.0),  # no decay: constant
    (0, 1.0, 20, 1.0),  # 1: off
])
def test_anchor_weight_falls_linearly_to_one(update, weight, decay, expected):
    assert anchor_weight(update, weight, decay) == pytest.approx(expected)


@pytest.mark.parametrize(("args", "expected"), [
    ((4, 28, 1, 32), (28, 32)),  # the toy: 4 new + 16 own + 12 taught, one forward
    ((4, 36, 1, 32), (36, 20)),  # 40: two forwards of 20 rather than cutting 8 to make one of 32
    ((4, 28, 1, 4), (28, 4)),
    ((4, 9, 1, 4), (8, 4)),  # a short pool: one replayed response cut, three forwards of 4
    ((4, 3, 1, 2), (2, 2)),  # 7 with at most 2: three forwards of 2, not seven of 1
    ((4, 13, 1, 32), (13, 17)),
    ((16, 7, 2, 4), (0, 4)),  # 6 over 2 ranks: 11 each, 3 cut per rank for two forwards of 4
    ((128, 384, 8, 2), (384, 2)),
    ((8, 0, 1, 8), (0, 8)),
    ((6, 0, 1, 4), (0, 3)),  # the paper's batch alone, two forwards of 3
    ((5, 0, 1, 4), (0, 1)),  # nothing to cut: five forwards of 1
    ((16, 7, 2, None), (6, None)),  # dynamic batch sizes: only the ranks matter
])
def test_micro_batching_splits_every_rank_into_whole_micro_batches(args, expected):
    new, replayed, ranks, largest = args
    kept, micro = micro_batching(*args)
    assert (kept, micro) == expected
    assert kept % ranks == 0 and kept <= replayed
    if micro is not None:
        share = (new + kept) // ranks
        assert share % micro == 0 and micro <= largest
        assert (replayed // ranks * ranks - kept) // ranks < micro  # fewer than one micro-batch cut per rank


def test_micro_batching_refuses_new_demonstrations_that_do_not_split():
    with pytest.raises(ValueError, match="3 new demonstrations do not split over 2"):
        micro_batching(3, 0, 2, 4)


@pytest.mark.parametrize(("args", "expected"), [
    ((16, 12, 0, 0, 1), (16, 12)),  # no warm-up: the configured counts
    ((16, 12, 0, 20, 1), (28, 0)),  # first update: 12 x 1/20 rounds down to none, own responses fill in
    ((16, 12, 9, 20, 1), (22, 6)),  # halfway
    ((16, 12, 19, 20, 1), (16, 12)),  # the last warm-up update reaches taught_share
    ((16, 12, 40, 20, 1), (16, 12)),
    ((8, 8, 4, 10, 4), (12, 4)),  # 8 x 5/10 = 4, a multiple of 4 ranks
    ((8, 8, 2, 10, 4), (16, 0)),  # 8 x 3/10 = 2.4, down to 0 on 4 ranks
])
def test_replay_draws_grow_taught_demonstrations_at_a_constant_batch(args, expected):
    own, taught, _, _, ranks = args
    draws = replay_draws(*args)
    assert draws == expected
    assert sum(draws) == own + taught and draws[1] % ranks == 0


@pytest.mark.parametrize(("args", "expected"), [
    ((128, 0.5, 0.25, 8), (256, 128)),  # the GPU default: M = 128, then 512 sequences per update
    ((4, 0.5, 0.375, 1), (16, 12)),  # the toy
    ((8, 0.05, 0.05, 8), (0, 0)),  # 8 x 0.05 / 0.9 rounds down to no response on 8 ranks
    ((8, 0.0, 0.0, 1), (0, 0)),  # the paper
    ((8, 0.5, 0.5, 1), (0, 0)),  # no room for new demonstrations: refused by relift.checks
])
def test_replayed_counts_are_shares_of_the_whole_batch_in_multiples_of_the_ranks(args, expected):
    assert replayed_counts(*args) == expected


def test_warmup_reaches_the_full_value_at_its_last_update():
    assert [warmup_fraction(k, 4) for k in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_fraction(0, 0) == 1.0


def toy(*overrides: str):
    return supervised_settings(composed("device=cpu", "toy=digits", *overrides))


def test_the_plan_follows_every_schedule_and_cuts_short_pools_to_whole_micro_batches():
    settings = dataclasses.replace(toy(), taught_warmup_updates=4, largest_micro_batch=8, warmup_updates=20)
    assert (settings.new, settings.own, settings.taught, settings.anchor_weight, settings.anchor_decay_updates) == (
        4, 16, 12, 16.0, 20)  # relift/config/toy/digits.yaml and relift_trainer.yaml
    assert replay_asked(settings, 0) == (25, 3) and replay_asked(settings, 3) == (16, 12)  # 12 x 1/4, then 12
    first = plan_update(settings, 0, 5, 0)  # the pools hold 5 own responses so far: 9 -> one forward of 8 + 1 cut
    assert (first.new, first.own, first.taught, first.micro_batch) == (4, 4, 0, 8)
    assert first.lr == pytest.approx(1e-3 / 20) and first.anchor_weight == 16.0
    full = plan_update(settings, 20, 16, 12)
    assert (full.own, full.taught, full.size, full.micro_batch) == (16, 12, 32, 8)
    assert full.lr == pytest.approx(1e-3) and full.anchor_weight == 1.0
    # short pools cut taught demonstrations before own responses
    cut = plan_update(settings, 20, 10, 3)
    assert (cut.own, cut.taught, cut.micro_batch) == (10, 2, 8)


def test_dry_run_describes_the_first_and_the_settled_update_from_the_plan():
    settings = toy()
    lines = describe(settings)
    first, settled = plan_update(settings, 0, 16, 12), plan_update(settings, 20, 16, 12)
    assert lines == [
        f"update 1          4 new demonstrations + 16 own responses (weight 16) + 12 taught demonstrations = 32 per "
        f"GPU, micro-batches of 32, lr {first.lr:g}",
        f"from update 21    4 new demonstrations + 16 own responses (weight 1) + 12 taught demonstrations = 32 per "
        f"GPU, micro-batches of 32, lr {settled.lr:g}",
        "at most 1 update(s) per step, when the buffer holds 4 questions",
    ]
    # the taught warm-up is in the plan (it was not before relift.sft_plan)
    warm = describe(toy("relift.replay.taught_warmup_updates=40"))
    assert warm[0].startswith("update 1          4 new demonstrations + 28 own responses (weight 16) + 0 taught")
    assert warm[1].startswith("from update 40    4 new demonstrations + 16 own responses (weight 1) + 12 taught")
    paper = describe(supervised_settings(composed("interleave=paper")))
    assert paper == [
        "update 1          128 new demonstrations + 0 own responses (weight 1) + 0 taught demonstrations = 16 per GPU, "
        "micro-batches by tokens (dynamic batching), lr 1e-06",
        "at most 1 update(s) per step, when the buffer holds 128 questions",
    ]
