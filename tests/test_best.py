"""relift.best: the score that picks the best model, and its atomic publication."""

import json
import os

from relift.best import improves, publish, validation_score


def test_validation_score_is_the_mean_of_the_core_means_per_source():
    metrics = {"val-core/digits/copy/acc/mean@1": 1.0, "val-core/math/acc/mean@4": 0.5,
               "val-core/math/acc/maj@4/mean": 0.9, "val-aux/math/acc/std@4": 0.1, "actor/loss": 3.0}
    assert validation_score(metrics) == 0.75
    assert validation_score({"actor/loss": 3.0}) is None


def test_only_a_strictly_better_score_makes_a_new_best():
    assert improves(0.5, None) and improves(0.6, 0.5)
    assert not improves(0.5, 0.5) and not improves(0.4, 0.5)  # the first of equal scores stays
    assert not improves(None, None) and not improves(None, 0.5)  # no validation metrics


def staged(root, name: str) -> str:
    path = root / name
    path.mkdir()
    (path / "model.safetensors").write_text(name)
    return str(path)


def test_publish_replaces_the_best_atomically_and_removes_the_previous(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    publish(staged(tmp_path, "a"), str(run), 10, {"step": 10, "score": 0.2})
    assert os.readlink(run / "best") == "best_step_10"
    publish(staged(tmp_path, "b"), str(run), 30, {"step": 30, "score": 0.4})
    assert os.readlink(run / "best") == "best_step_30"
    assert (run / "best" / "model.safetensors").read_text() == "b"
    assert json.loads((run / "best" / "relift_best.json").read_text()) == {"step": 30, "score": 0.4}
    assert sorted(os.listdir(run)) == ["best", "best_step_30"]
