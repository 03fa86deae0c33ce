import pytest

from relift.guard import RunawayGuard


def test_a_jump_of_the_hardest_share_holds_updates_until_it_becomes_the_reference():
    guard = RunawayGuard(max_rise=0.2, window=3)
    assert [guard.allows(s) for s in (0.6, 0.65, 0.7)] == [True, True, True]  # within 0.2 of the low 0.6
    # Supervised updates broke the policy: everything is hardest. Held while 1.0 > low + 0.2 ...
    assert [guard.allows(1.0) for _ in range(3)] == [False, False, False]
    # ... until the jump has lasted the whole window: then it is the reference and updates resume.
    assert guard.allows(1.0)


def test_recovery_releases_the_guard_at_once():
    guard = RunawayGuard(max_rise=0.2, window=4)
    guard.allows(0.5)
    assert not guard.allows(0.9)
    assert guard.allows(0.6)  # RL brought the share back within 0.2 of the low


def test_off_and_bad_window():
    guard = RunawayGuard(max_rise=None, window=2)
    assert all(guard.allows(s) for s in (0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="window must be >= 1"):
        RunawayGuard(max_rise=0.1, window=0)


def test_state_round_trip():
    guard = RunawayGuard(max_rise=0.1, window=3)
    for s in (0.3, 0.5):
        guard.allows(s)
    restored = RunawayGuard(max_rise=0.1, window=3)
    restored.load_state_dict(guard.state_dict())
    assert not restored.allows(0.45) and restored.allows(0.35)
