import pytest

from relift.buffer import HardQuestion, HardQuestionBuffer


def q(i: int, demo: str = "d") -> HardQuestion:
    return HardQuestion(question_id=f"q{i}", prompt_ids=[1, 2, i], demonstration=f"{demo}{i}")


def test_newest_first_and_removal():
    buffer = HardQuestionBuffer()
    for i in range(5):
        buffer.push(q(i))
    taken = buffer.pop_newest(3)
    assert [x.question_id for x in taken] == ["q4", "q3", "q2"]
    assert len(buffer) == 2 and "q0" in buffer and "q4" not in buffer


def test_duplicate_question_is_refreshed_not_duplicated():
    buffer = HardQuestionBuffer()
    buffer.push(q(1))
    buffer.push(q(2))
    buffer.push(q(1, demo="new"))
    assert len(buffer) == 2
    assert buffer.pop_newest(1)[0].demonstration == "new1"


def test_capacity_drops_oldest_and_counts():
    buffer = HardQuestionBuffer(capacity=2)
    for i in range(4):
        buffer.push(q(i))
    assert len(buffer) == 2 and buffer.evicted == 2
    assert [x.question_id for x in buffer.pop_newest(2)] == ["q3", "q2"]


def test_pop_more_than_held_raises():
    buffer = HardQuestionBuffer()
    buffer.push(q(0))
    with pytest.raises(ValueError, match="holds 1"):
        buffer.pop_newest(2)


def test_empty_buffer_after_exact_drain_is_usable():
    # The reference crashed (len(None)) when the buffer was drained exactly and the next batch had none.
    buffer = HardQuestionBuffer()
    buffer.push(q(0))
    buffer.pop_newest(1)
    assert len(buffer) == 0
    buffer.push(q(1))
    assert len(buffer) == 1


def test_state_dict_round_trip_keeps_order():
    buffer = HardQuestionBuffer(capacity=10)
    for i in range(4):
        buffer.push(q(i))
    restored = HardQuestionBuffer()
    restored.load_state_dict(buffer.state_dict())
    assert restored.capacity == 10
    assert [x.question_id for x in restored.pop_newest(4)] == ["q3", "q2", "q1", "q0"]


def test_invalid_capacity():
    with pytest.raises(ValueError):
        HardQuestionBuffer(capacity=0)
