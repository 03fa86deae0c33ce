import random

import pytest

from relift.buffer import CorrectResponse, HardQuestion, QuestionBuffer


def q(i: int, demo: str = "d") -> HardQuestion:
    return HardQuestion(question_id=f"q{i}", prompt_ids=[1, 2, i], demonstration=f"{demo}{i}")


def test_newest_first_and_removal():
    buffer = QuestionBuffer(HardQuestion)
    for i in range(5):
        buffer.push(q(i))
    taken = buffer.pop_newest(3)
    assert [x.question_id for x in taken] == ["q4", "q3", "q2"]
    assert len(buffer) == 2 and "q0" in buffer and "q4" not in buffer


def test_duplicate_question_is_refreshed_not_duplicated():
    buffer = QuestionBuffer(HardQuestion)
    buffer.push(q(1))
    buffer.push(q(2))
    buffer.push(q(1, demo="new"))
    assert len(buffer) == 2
    assert buffer.pop_newest(1)[0].demonstration == "new1"


def test_capacity_drops_oldest_and_counts():
    buffer = QuestionBuffer(HardQuestion, capacity=2)
    for i in range(4):
        buffer.push(q(i))
    assert len(buffer) == 2 and buffer.evicted == 2
    assert [x.question_id for x in buffer.pop_newest(2)] == ["q3", "q2"]


def test_pop_more_than_held_raises():
    buffer = QuestionBuffer(HardQuestion)
    buffer.push(q(0))
    with pytest.raises(ValueError, match="holds 1"):
        buffer.pop_newest(2)


def test_empty_buffer_after_exact_drain_is_usable():
    # The reference crashed (len(None)) when the buffer was drained exactly and the next batch had none.
    buffer = QuestionBuffer(HardQuestion)
    buffer.push(q(0))
    buffer.pop_newest(1)
    assert len(buffer) == 0
    buffer.push(q(1))
    assert len(buffer) == 1


def test_state_dict_round_trip_keeps_order():
    buffer = QuestionBuffer(HardQuestion, capacity=10)
    for i in range(4):
        buffer.push(q(i))
    restored = QuestionBuffer(HardQuestion, capacity=10)
    restored.load_state_dict(buffer.state_dict())
    assert [x.question_id for x in restored.pop_newest(4)] == ["q3", "q2", "q1", "q0"]


def test_resume_keeps_the_configured_capacity():
    # A resume used to restore the checkpoint's capacity over the one the user configured.
    buffer = QuestionBuffer(HardQuestion)
    for i in range(5):
        buffer.push(q(i))
    restored = QuestionBuffer(HardQuestion, capacity=3)
    restored.load_state_dict(buffer.state_dict())
    assert restored.capacity == 3 and restored.evicted == 2
    assert [x.question_id for x in restored.pop_newest(3)] == ["q4", "q3", "q2"]


def test_invalid_capacity():
    with pytest.raises(ValueError):
        QuestionBuffer(HardQuestion, capacity=0)


def test_replay_pool_samples_without_removing_and_round_trips():
    pool = QuestionBuffer(CorrectResponse, capacity=4)
    for i in range(6):
        pool.push(CorrectResponse(question_id=f"q{i}", prompt_ids=[1, i], response_ids=[7, i]))
    assert len(pool) == 4 and pool.evicted == 2
    drawn = pool.sample(3, random.Random(0))
    assert len({r.question_id for r in drawn}) == 3 and {r.question_id for r in drawn} <= {"q2", "q3", "q4", "q5"}
    assert len(pool) == 4
    assert drawn == pool.sample(3, random.Random(0))  # the draw depends on the generator only
    assert len(pool.sample(10, random.Random(0))) == 4
    restored = QuestionBuffer(CorrectResponse, capacity=4)
    restored.load_state_dict(pool.state_dict())
    assert restored.pop_newest(1)[0] == CorrectResponse(question_id="q5", prompt_ids=[1, 5], response_ids=[7, 5])
