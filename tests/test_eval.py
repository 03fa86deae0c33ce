"""relift.eval as a user runs it, on CPU with the tiny model and the bundled benchmarks."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import REPO

from relift.eval.items import DEFAULT_DATA
from relift.eval.metrics import pass_at_k
from relift.reward import grade

BUNDLED = [os.path.join(REPO, path) for path in DEFAULT_DATA]

BENCHMARKS = {"aime", "aime25", "amc", "math", "minerva", "olympiad_bench", "gpqa", "arc_c"}


def run_eval(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "relift.eval", *map(str, args)], capture_output=True, text=True,
                          **kwargs)


@pytest.mark.parametrize(
    "answer, ground_truth",
    [
        ("\\boxed{\\dfrac{3}{4}}", "0.75"),
        ("\\boxed{0.75}", "\\frac{3}{4}"),
        ("\\boxed{5\\text{ cm}}", "5"),
        ("\\boxed{30^\\circ}", "30"),
        ("\\boxed{x \\in (1, 2]}", "(1,2]"),
        ("\\boxed{\\sqrt{2}/2}", "\\frac{\\sqrt{2}}{2}"),
        ("\\boxed{1,000}", "1000"),
        ("\\boxed{2\\pi}", "2 \\pi"),
    ],
)
def test_grading_equivalences(answer, ground_truth):
    assert grade("math", "reasoning </think> " + answer, ground_truth).correct


def test_grading_reports_extracted_answer_and_missing_think():
    g = grade("gpqa", "hmm </think> so ANSWER: D", "D")
    assert g.correct and g.extracted == "D" and g.status == "ok"
    g = grade("math", "\\boxed{4}", "4")
    assert not g.correct and g.status == "no_think" and not g.has_think_close


def test_pass_at_k():
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 1, 4) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(8, 2, 2) == pytest.approx(1 - (6 * 5) / (8 * 7))


def test_tiny_model_on_every_bundled_benchmark(tiny, tmp_path):
    result = run_eval("run", tiny["warm_model"], "--name", "tiny", "--out", tmp_path, "--data", *BUNDLED,
                      "--max-rows-per-benchmark", 2,
                      "--max-new-tokens", 12, "--n", 2, "--batch-size", 16, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| **avg in-distribution** |" in result.stdout
    summary = json.load(open(tmp_path / "tiny" / "summary.json"))
    assert BENCHMARKS <= set(summary)
    assert summary["average/in_distribution"]["benchmarks"] == 6
    assert summary["average/out_of_distribution"]["benchmarks"] == 2
    samples = [json.loads(line) for line in open(tmp_path / "tiny" / "samples.jsonl")]
    assert len(samples) == 2 * 2 * len(BENCHMARKS)
    assert all(s["response_tokens"] <= 12 and s["ground_truth"] for s in samples)
    assert {s["benchmark"] for s in samples} == BENCHMARKS
    # the default template is the training one: the system prompt stays
    assert all("systematic, thorough reasoning" in s["prompt"] for s in samples)
    table = run_eval("compare", tmp_path / "tiny", tmp_path / "tiny")
    assert table.returncode == 0 and table.stdout.count("| math |") == 1


def test_interrupted_run_resumes_without_redoing_or_losing_samples(tiny, tmp_path):
    args = ["run", tiny["warm_model"], "--name", "tiny", "--out", tmp_path, "--data", BUNDLED[0],
            "--max-rows-per-benchmark", 8, "--max-new-tokens", 24, "--batch-size", 1]
    samples_path = tmp_path / "tiny" / "samples.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "relift.eval", *map(str, args)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not samples_path.exists() or len(samples_path.read_text().splitlines()) < 5):
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = [line for line in samples_path.read_text().splitlines() if line.endswith("}")]
    total = 8 * 6  # 8 rows of each of the six math benchmarks, one sample each
    assert 5 <= len(written) < total, "the run finished before it could be interrupted"
    with open(samples_path, "a") as f:
        f.write('{"file": "math_eval.avg32.parquet", "row": 99')  # a write torn by the crash

    result = run_eval(*args, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(written)} already in" in result.stdout
    records = [json.loads(line) for line in samples_path.read_text().splitlines()]  # no torn line left
    keys = [(r["file"], r["row"], r["sample"]) for r in records]
    assert len(keys) == len(set(keys)) == total
    assert records[: len(written)] == [json.loads(line) for line in written]
    assert os.path.exists(tmp_path / "tiny" / "table.md")
