"""bench/toy_repro.py's rules that need no training: which arms a bench runs, and what a resumed bench keeps
of the results it finds (the arms themselves run in `make bench`)."""

import pytest

from bench.toy_repro import arms_to_run, check_resumable

SETTINGS = {"rl_steps": 60, "val_per_type": 640, "dev_per_type": 100}


def test_arms_run_in_budget_order_and_an_arm_without_its_budget_is_refused():
    assert arms_to_run(["sft_rl", "sft", "relift"], [8]) == ("relift", "sft", "sft_rl", "relift_m8",
                                                             "sft_rl_matched_m8")
    with pytest.raises(SystemExit, match="sft_rl needs sft"):
        arms_to_run(["relift", "sft_rl"], [])


def results(sft_model: str, *done: str) -> dict:
    arms = {arm: {"seeds": {"2": {"model": sft_model} if arm == "sft" else {}}} for arm in done}
    return {**SETTINGS, "arms": arms}


def test_a_resume_keeps_results_of_the_same_settings(tmp_path):
    earlier = results(str(tmp_path), "relift", "sft")
    check_resumable(earlier, SETTINGS, ("relift", "sft", "sft_rl"), [2, 3])


@pytest.mark.parametrize("key", sorted(SETTINGS))
def test_a_resume_into_results_of_other_settings_is_refused_naming_both(key, tmp_path):
    earlier = {**results(str(tmp_path), "relift"), key: SETTINGS[key] + 1}
    with pytest.raises(SystemExit, match=f"run with {key}={SETTINGS[key] + 1}, this bench with {key}={SETTINGS[key]}"):
        check_resumable(earlier, SETTINGS, ("relift",), [2])


def test_a_resume_whose_sft_rl_would_start_from_a_removed_model_is_refused_before_running(tmp_path):
    gone = str(tmp_path / "gone")
    with pytest.raises(SystemExit, match=f"seed 2's sft_rl starts from the kept sft model {gone}, which is gone"):
        check_resumable(results(gone, "relift", "sft"), SETTINGS, ("relift", "sft", "sft_rl"), [2])
    # Nothing to start from it: an sft_rl already done, or not asked for.
    check_resumable(results(gone, "relift", "sft", "sft_rl"), SETTINGS, ("relift", "sft", "sft_rl"), [2])
    check_resumable(results(gone, "relift", "sft"), SETTINGS, ("relift", "sft"), [2])
