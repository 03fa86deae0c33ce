"""bench/budget_rules.py: when the bench's SFT stages stop, and how its arms reach one compute budget. Pure
Python; the bench itself (make bench) runs them on the toy."""

import pytest

from bench.budget_rules import first_leg_steps, sft_stop, sft_until, steps_to_budget, within


@pytest.mark.parametrize(
    ("dev", "expected"),
    [
        ([0.50, 0.80, 0.95, 0.955, 0.99], (4, 4)),  # epoch 4 gains half a point: stop there, keep it (highest)
        ([0.50, 0.80, 0.95, 0.90, 0.99], (4, 3)),  # epoch 4 falls: stop, keep epoch 3; epoch 5 never runs
        ([0.50, 0.80, 0.95, 0.97, 0.99], (5, 5)),  # still learning at the last epoch allowed
        ([0.90, 0.90, 0.99], (2, 1)),  # equals are not a gain; the earliest of equals is kept
        ([0.70], (1, 1)),
    ],
)
def test_sft_stops_after_the_first_epoch_without_a_point_of_gain_and_keeps_the_best(dev, expected):
    assert sft_stop(dev, min_gain=0.01) == expected


def test_sft_stop_needs_an_epoch():
    with pytest.raises(ValueError, match="at least one epoch"):
        sft_stop([])


def test_an_sft_run_cut_to_its_stop_counts_its_share_of_the_epochs():
    summary = {"steps": 300, "wall_s": 100.0, "sft_wall_s": 100.0, "sft_updates": 300, "sft_tokens_trained": 5000,
               "tokens_in_sft_updates": 12000, "demos_used": 960, "parameters": 7, "flops": 1.0}
    cut = sft_until(summary, epochs_trained=2, epochs_run=5)
    assert (cut["steps"], cut["sft_updates"], cut["tokens_in_sft_updates"], cut["wall_s"]) == (120, 120, 4800, 40.0)
    assert cut["demos_used"] == 960 and isinstance(cut["steps"], int)
    assert cut["flops"] == 6 * 7 * 4800  # derived again from the cut tokens, not copied


def test_steps_to_budget_extends_at_the_measured_rate_and_never_shortens():
    assert steps_to_budget(60, 6.0e12, 7.5e12) == 75
    assert steps_to_budget(60, 6.0e12, 6.04e12) == 60  # less than half a step left
    assert steps_to_budget(60, 8.0e12, 7.5e12) == 60  # over budget already: the run stays as it is
    with pytest.raises(ValueError, match="spent compute"):
        steps_to_budget(0, 0.0, 1.0)


def test_a_first_leg_spends_about_nine_tenths_of_what_is_left():
    assert first_leg_steps(1.0e13, 1.0e11) == 90
    assert first_leg_steps(1.0e10, 1.0e11) == 1
    with pytest.raises(ValueError, match="no compute left"):
        first_leg_steps(-1.0, 1.0e11)


def test_within_gives_the_room_to_the_nearer_bound():
    assert within(1.05, 1.0) == pytest.approx(0.05)
    assert within(0.95, 1.0) == pytest.approx(0.05)
    assert within(1.12, 1.0) == pytest.approx(-0.02)
