"""relift.preflight: every problem before Ray at once, each one line."""

import shutil
import subprocess
import sys

from helpers import composed
from transformers import AutoTokenizer

from relift.preflight import preflight


def test_every_problem_is_reported_not_only_the_first(tmp_path):
    report = preflight(composed(
        "actor_rollout_ref.model.path=/nonexistent/model",
        f"data.train_files={tmp_path}/missing.parquet",
        "relift.sft_trigger_size=12",
        f"data.val_files={tmp_path}/missing_valid.parquet",
        "trainer.logger=[console,no_such_backend]",
    ))
    assert len(report.problems) == 5, report.problems
    assert report.problems[0].startswith("relift.sft_trigger_size=12 must be a multiple of the data-parallel size 8")
    assert f"{tmp_path}/missing.parquet" in report.problems[1]
    assert report.problems[2] == (f"data.val_files={tmp_path}/missing_valid.parquet: file not found (a parquet of "
                                  "validation questions in the training schema; dataset/prepare_train.py --holdout N "
                                  "writes one)")
    assert report.problems[3].startswith("actor_rollout_ref.model.path=/nonexistent/model: no Hugging Face model there")
    assert "no_such_backend" in report.problems[4]
    assert report.rows is None and report.checkpoints == []  # the disk plan needs the rows and the model


def test_main_prints_them_all_before_ray(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "relift.main", "device=cpu", "actor_rollout_ref.model.path=/nonexistent/model",
         f"data.train_files={tmp_path}/missing.parquet", "relift.sft_micro_batch_size_per_gpu=0"],
        capture_output=True, text=True, timeout=120,
    )
    lines = result.stderr.strip().splitlines()[-5:]
    assert result.returncode != 0
    # The fourth: the default data.val_files, dataset/relift_valid.parquet, is not under the test's folder.
    assert lines[0] == "[relift] 4 problems, nothing started:", result.stderr[-2000:]
    assert all(line.startswith("[relift] ") for line in lines[1:])
    assert "Ray" not in result.stdout and "Traceback" not in result.stderr


def test_a_tokenizer_that_marks_the_think_tag_special_is_refused(tiny, tmp_path):
    """veRL decodes responses for the reward without special tokens: `</think>` would vanish, every reward be 0."""
    model = tmp_path / "model"
    shutil.copytree(tiny["model"], model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.add_special_tokens({"additional_special_tokens": ["</think>"]})
    tokenizer.save_pretrained(model)
    assert "</think>" not in tokenizer.decode(tokenizer.encode("a </think> b"), skip_special_tokens=True)
    config = [f"data.train_files={tiny['train']}", f"data.val_files={tiny['val']}"]
    problems = preflight(composed(f"actor_rollout_ref.model.path={model}", *config)).problems
    assert [p for p in problems if "</think>" in p] == [
        f"actor_rollout_ref.model.path={model}: its tokenizer marks </think> as a special token, which veRL drops "
        "when it decodes a response for the reward (skip_special_tokens): every response would score 0. Make "
        "</think> an ordinary added token (\"special\": false in tokenizer.json's added_tokens and "
        "tokenizer_config.json's added_tokens_decoder), or grade without it: "
        "reward.custom_reward_function.reward_kwargs.require_think=false"]
    assert not [p for p in preflight(composed(f"actor_rollout_ref.model.path={tiny['model']}", *config)).problems
                if "</think>" in p]
    graded_without = preflight(composed(f"actor_rollout_ref.model.path={model}", *config,
                                        "reward.custom_reward_function.reward_kwargs.require_think=false"))
    assert not [p for p in graded_without.problems if "</think>" in p]
