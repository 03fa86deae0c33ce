"""relift.preflight: every problem before Ray at once, each one line."""

import subprocess
import sys

from helpers import composed

from relift.preflight import preflight


def test_every_problem_is_reported_not_only_the_first(tmp_path):
    report = preflight(composed(
        "actor_rollout_ref.model.path=/nonexistent/model",
        f"data.train_files={tmp_path}/missing.parquet",
        "relift.sft_trigger_size=12",
        "trainer.logger=[console,no_such_backend]",
    ))
    assert len(report.problems) == 4, report.problems
    assert report.problems[0].startswith("relift.sft_trigger_size=12 must be a multiple of the data-parallel size 8")
    assert f"{tmp_path}/missing.parquet" in report.problems[1]
    assert report.problems[2].startswith("actor_rollout_ref.model.path=/nonexistent/model: no Hugging Face model there")
    assert "no_such_backend" in report.problems[3]
    assert report.rows is None and report.checkpoints == []  # the disk plan needs the rows and the model


def test_main_prints_them_all_before_ray(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "relift.main", "device=cpu", "actor_rollout_ref.model.path=/nonexistent/model",
         f"data.train_files={tmp_path}/missing.parquet", "relift.sft_micro_batch_size_per_gpu=0"],
        capture_output=True, text=True, timeout=120,
    )
    lines = result.stderr.strip().splitlines()[-4:]
    assert result.returncode != 0
    assert lines[0] == "[relift] 3 problems, nothing started:", result.stderr[-2000:]
    assert all(line.startswith("[relift] ") for line in lines[1:])
    assert "Ray" not in result.stdout and "Traceback" not in result.stderr
