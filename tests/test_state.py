from omegaconf import OmegaConf

from relift.accounting import Account
from relift.buffer import CorrectResponse, HardQuestion
from relift.state import RunState


def relift_section(capacity=None):
    return OmegaConf.create({"buffer_capacity": capacity, "replay": {"pool_size": 8},
                             "guard": {"max_rise": 0.2, "window": 3}})


def filled() -> RunState:
    state = RunState(relift_section(), Account(arm="relift"))
    for i in range(3):
        state.buffer.push(HardQuestion(f"q{i}", [1, i], f"demo {i}"))
    state.replay.push(CorrectResponse("r", [1], [2, 3]))
    state.guard.allows(0.5)
    state.counters["sft_updates"] = 7
    state.demos_used = {"q9", "q8"}
    state.best_score = 0.4
    state.account.tokens_generated = 123
    return state


def test_a_resume_restores_everything_but_the_configured_capacities():
    saved = filled().state_dict()
    restored = RunState(relift_section(capacity=2), Account(arm="relift"))
    restored.load_state_dict(saved)
    assert restored.state_dict() | {"buffer": saved["buffer"]} == saved
    assert len(restored.buffer) == 2 and restored.buffer.capacity == 2  # the newest two of three
    assert [q.question_id for q in restored.buffer.pop_newest(2)] == ["q2", "q1"]


def test_a_state_saved_before_the_replay_pool_loads_with_those_parts_empty():
    saved = filled().state_dict()
    for name in ("replay", "guard", "account"):
        del saved[name]
    restored = RunState(relift_section(), Account(arm="relift"))
    restored.load_state_dict(saved)
    assert len(restored.replay) == 0 and restored.counters["sft_updates"] == 7
    assert restored.account.tokens_generated == 0
