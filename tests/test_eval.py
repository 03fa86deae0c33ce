"""relift.eval as a user runs it, on CPU with the tiny model and the bundled benchmarks."""

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import REPO

from relift.eval import identity
from relift.eval.__main__ import default_name, regrade_failed
from relift.eval.__main__ import main as eval_main
from relift.eval.items import DEFAULT_DATA
from relift.eval.metrics import pass_at_k, summarize
from relift.eval.parallel import Parallelism, plan, tensor_sizes
from relift.eval.samples import SampleLog
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
    # transformers: one model load less; vLLM, the default here too, is test_vllm_draws_each_sample...
    result = run_eval("run", tiny["warm_model"], "--name", "tiny", "--out", tmp_path, "--data", *BUNDLED,
                      "--max-rows-per-benchmark", 2, "--backend", "hf",
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
            "--max-rows-per-benchmark", 8, "--max-new-tokens", 24, "--batch-size", 1, "--backend", "hf"]
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

    # The folder's samples are the warm model's at these settings: another model, or other settings, are
    # refused before any model loads.
    for other, named in [(["run", tiny["model"], *args[2:]], f"and the model differ ({tiny['model']})"),
                         ([*args, "--temperature", 1.0], "made with temperature=0.6, this run asks temperature=1.0")]:
        refused = run_eval(*other, timeout=120)
        assert refused.returncode == 2 and named in refused.stderr, refused.stderr[-2000:]
        assert "evaluate into another --name or --out, or move that folder away" in refused.stderr
    assert len(samples_path.read_text().splitlines()) == total


def test_default_names_of_two_checkpoints_do_not_collide(tmp_path):
    assert default_name("train_results/ReLIFT/math_7b_relift/best") == "math_7b_relift_best"
    assert default_name("/ckpts/run/global_step_40/actor/huggingface/") == "run_global_step_40_actor_huggingface"
    assert default_name("/models/Qwen2.5-Math-7B") == "Qwen2.5-Math-7B"
    with pytest.raises(SystemExit):
        eval_main(["run", "/a/run/best", "/b/run/best", "--out", str(tmp_path), "--data", BUNDLED[0]])  # run_best


def test_a_sample_whose_grading_failed_is_graded_again_not_counted_wrong(tmp_path):
    log = SampleLog(str(tmp_path / "samples.jsonl"))
    base = {"file": "f.parquet", "benchmark": "math", "ground_truth": "4", "response_tokens": 3,
            "truncated": False, "has_think_close": True, "extracted": ""}
    log.append([{**base, "row": 0, "sample": 0, "prompt": "p0", "response": "</think> \\boxed{4}", "correct": None,
                 "grade_status": "timeout"},
                {**base, "row": 1, "sample": 0, "prompt": "p1", "response": "</think> \\boxed{5}", "correct": False,
                 "grade_status": "ok"}])
    assert summarize(list(log.done.values()))["math"]["ungraded"] == 1
    with concurrent.futures.ThreadPoolExecutor(2) as graders:
        assert regrade_failed(log, graders, timeout_s=10.0) == (1, 0)
    again = SampleLog(str(tmp_path / "samples.jsonl")).done  # as the next run reads the file
    assert again[("f.parquet", 0, 0)]["correct"] is True and again[("f.parquet", 0, 0)]["grade_status"] == "ok"
    math = summarize(list(again.values()))["math"]
    assert math["ungraded"] == 0 and math["avg@1"] == 0.5


def test_a_run_is_identified_by_its_weights_and_settings(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(bytes(range(256)) * 40000)  # 10 MB: read in pieces
    data = tmp_path / "bench.parquet"
    data.write_bytes(b"rows")
    settings = {"temperature": 0.6, "n": 1}
    first = identity.identity(str(model), settings, [str(data)])
    folder = tmp_path / "results"
    assert identity.mismatch(str(folder), first) is None  # nothing there yet
    folder.mkdir()
    (folder / "samples.jsonl").write_text("")
    assert "no run.json" in identity.mismatch(str(folder), first)
    (folder / "run.json").write_text(json.dumps(first))
    assert identity.mismatch(str(folder), first) is None
    (model / "model.safetensors").write_bytes(bytes((i + 1) % 256 for i in range(256)) * 40000)  # same size, trained
    assert "the model's weights differ" in identity.mismatch(
        str(folder), identity.identity(str(model), settings, [str(data)]))
    assert identity.mismatch(str(folder), {**first, "settings": {**settings, "n": 4}}) == (
        f"{folder} holds samples made with n=1, this run asks n=4")


# (attention heads, KV heads): Qwen2.5-7B and Qwen2.5-Math-7B, Qwen2.5-Math-1.5B (their config.json files).
SEVEN_B, ONE_AND_A_HALF_B = (28, 4), (12, 2)


@pytest.mark.parametrize(("heads", "gpus", "sizes"), [
    (SEVEN_B, 1, [1]), (SEVEN_B, 2, [1, 2]), (SEVEN_B, 4, [1, 2, 4]), (SEVEN_B, 6, [1, 2]), (SEVEN_B, 8, [1, 2, 4]),
    (ONE_AND_A_HALF_B, 1, [1]), (ONE_AND_A_HALF_B, 2, [1, 2]), (ONE_AND_A_HALF_B, 4, [1, 2, 4]),
    (ONE_AND_A_HALF_B, 6, [1, 2, 6]), (ONE_AND_A_HALF_B, 8, [1, 2, 4]),
])
def test_tensor_parallel_sizes_are_those_vllm_takes_for_the_heads(heads, gpus, sizes):
    assert tensor_sizes(*heads, gpus) == sizes
    assert plan(*heads, gpus) == Parallelism(1, gpus)  # a copy a GPU: the fastest where the model fits
    for size in sizes:
        assert plan(*heads, gpus, tensor=size) == Parallelism(size, gpus // size)


def test_a_size_vllm_refuses_is_refused_with_the_heads_and_the_sizes_that_work():
    # What the evaluation did on 8 GPUs before: tensor_parallel_size = every visible GPU.
    with pytest.raises(ValueError, match=r"--tensor-parallel-size 8 does not fit 28 attention heads and 4 KV heads "
                                         r"on 8 GPU\(s\) .*use one of \[1, 2, 4\]"):
        plan(*SEVEN_B, 8, tensor=8)
    with pytest.raises(ValueError, match=r"use one of \[1, 2\]"):
        plan(*SEVEN_B, 6, tensor=3)  # 6 GPUs would leave some idle with copies of 4
    assert plan(*SEVEN_B, 0) == Parallelism(1, 1)  # CPU


def test_the_default_is_the_smallest_size_whose_shard_fits_half_a_gpu():
    gib = 2**30
    assert plan(*SEVEN_B, 8, weight_bytes=15 * gib, gpu_bytes=80 * gib) == Parallelism(1, 8)
    assert plan(*SEVEN_B, 8, weight_bytes=15 * gib, gpu_bytes=24 * gib) == Parallelism(2, 4)
    assert plan(64, 8, 8, weight_bytes=145 * gib, gpu_bytes=80 * gib) == Parallelism(4, 2)  # a 72B model
    with pytest.raises(ValueError, match="do not fit 8 GPU"):
        plan(*SEVEN_B, 8, weight_bytes=400 * gib, gpu_bytes=80 * gib)


def test_vllm_draws_each_sample_with_its_own_seed_whatever_the_copies(tiny, tmp_path):
    """vLLM's CPU build: at temperature 1 the samples of one row differ (one seed per sample, from the run
    seed, the row and the sample), and two copies of the model, each in a process of its own, produce the
    same samples as one."""
    common = ["--backend", "vllm", "--data", BUNDLED[0], "--max-rows-per-benchmark", 1, "--n", 4,
              "--temperature", 1.0, "--max-new-tokens", 12]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # each mostly starts vLLM, one core at a time
        one = pool.submit(run_eval, "run", tiny["warm_model"], "--name", "one", "--out", tmp_path, *common, timeout=600)
        two = pool.submit(run_eval, "run", tiny["warm_model"], "--name", "two", "--out", tmp_path, *common,
                          "--data-parallel-size", 2, timeout=600)
        one, two = one.result(), two.result()
    assert one.returncode == 0, one.stderr[-3000:]
    assert "[eval] one: backend vllm, 1 copy of the model on 1 device(s) each" in one.stdout
    assert two.returncode == 0, two.stderr[-3000:]
    assert "[eval] two: backend vllm, 2 copies of the model on 1 device(s) each" in two.stdout
    samples = {name: {(s["file"], s["row"], s["sample"]): s["response"] for s in map(json.loads, open(
        tmp_path / name / "samples.jsonl"))} for name in ("one", "two")}
    assert samples["one"] == samples["two"] and len(samples["one"]) == 4 * 6  # one row of each math benchmark
    # One seed for every sample of a batch made the 4 samples of a row one sample 4 times. The tiny model is
    # all but sure of some rows' first tokens: most rows, not every one, show different samples.
    rows = {(file, row) for file, row, _ in samples["one"]}
    varied = [row for row in rows if len({samples["one"][(*row, k)] for k in range(4)}) > 1]
    assert len(varied) >= len(rows) / 2, samples["one"]
