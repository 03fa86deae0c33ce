"""The digit-task toy's data: procedures, disjoint splits, and the property the bench relies on."""

import pandas as pd
import pytest

from relift.data import validate_file
from relift.toy.digit_tasks import TYPES, build, make_question


def test_procedures_and_demonstrations():
    question, demonstration, answer = make_question("inc", (3, 8, 1, 9, 2))
    assert (question, answer) == ("Add one to each digit of 3 8 1 9 2.", "49203")
    assert demonstration == "<think>\n4 9 2 0 3\n</think>\nThe answer is \\boxed{49203}."
    assert make_question("dbl", (3, 8, 1, 9, 2))[2] == "66284"
    assert make_question("copy", (3, 8, 1, 9, 2))[2] == "38192"
    # Ambiguous as a number (leading zero), or solvable by copying: not generated.
    assert make_question("copy", (0, 1, 2, 3, 4)) is None
    assert make_question("inc", (9, 1, 2, 3, 4)) is None
    assert make_question("dbl", (5, 0, 0, 0, 0)) is None  # doubles to a leading zero


def test_splits_are_disjoint_valid_and_never_solved_by_copying(tmp_path):
    paths = build(str(tmp_path), train_rows=300, val_per_type=50, warm_start_rows=200, seed=3)
    frames = {name: pd.read_parquet(path) for name, path in paths.items()}
    for path in paths.values():
        validate_file(path, require_target=True)

    def keys(frame):
        return {(row["data_source"], row["prompt"][-1]["content"]) for row in frame.to_dict("records")}

    assert not keys(frames["val"]) & keys(frames["train"])
    assert not keys(frames["warm_start"]) & (keys(frames["train"]) | keys(frames["val"]))
    assert frames["val"]["data_source"].value_counts().to_dict() == {f"digits/{t}": 50 for t in TYPES}
    assert set(frames["warm_start"]["data_source"]) == {"digits/copy"}
    for row in frames["train"].to_dict("records"):
        digits = "".join(row["prompt"][-1]["content"].rstrip(".").split()[-5:])
        copied = row["reward_model"]["ground_truth"] == digits
        assert copied == (row["data_source"] == "digits/copy")
    # Same seed, same data: the arms of the bench share it. The bench's dev split (for when SFT stops) is
    # disjoint from the rest and leaves them as they were.
    again = build(str(tmp_path / "again"), train_rows=300, val_per_type=50, warm_start_rows=200, seed=3,
                  dev_per_type=20)
    for name, frame in frames.items():
        assert pd.read_parquet(again[name]).equals(frame)
    dev = pd.read_parquet(again["dev"])
    validate_file(again["dev"], require_target=True)
    assert dev["data_source"].value_counts().to_dict() == {f"digits/{t}": 20 for t in TYPES}
    assert not keys(dev) & (keys(frames["train"]) | keys(frames["val"]) | keys(frames["warm_start"]))


def test_trainer_refuses_more_steps_than_the_data_serves_before_ray(tiny):
    """veRL's dataloader would stop after one epoch and leave no checkpoint of the last step asked for."""
    from helpers import composed

    from relift.main import run

    config = composed("device=cpu", f"data.train_files={tiny['train']}", "data.train_batch_size=8",
                      "trainer.total_training_steps=9")
    with pytest.raises(SystemExit) as refused:
        run(config)
    assert "trainer.total_training_steps=9 needs 72 training rows" in str(refused.value)
    assert "set trainer.total_training_steps<=8 or trainer.total_epochs>=2" in str(refused.value)
