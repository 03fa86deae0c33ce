"""The paper's comparison in miniature, on CPU: GRPO, SFT, SFT->RL and ReLIFT (the paper's and relift's
recommended settings) on the digit-task toy.

    python -m bench.toy_repro --seed 1 --out outputs/bench/seed1.json          # one seed, five arms
    python -m bench.toy_repro --seed 1 2 --out bench/results/toy_repro.json      # make bench: + PNG + table

For each seed: digit-task data (relift/toy/digit_tasks.py: copy / inc / dbl of five digits) and a tiny
Qwen2 warm-started on `copy` only, shared by the five arms, which see the same training rows with the
same seeds and the same number of optimizer steps (60):

- `grpo`: `python -m relift.main device=cpu toy=digits relift.enable=false` (veRL's GRPO);
- `sft`: veRL's own SFT trainer (`python -m relift.sft_baseline`) on the demonstrations of those same
  training rows, one optimizer step per RL step with the RL batch size (so one pass over them), at
  ReLIFT's supervised lr (constant). The budget is optimizer steps, not wall time: an SFT step costs far
  less than an RL step, and its wall time is reported beside the others;
- `sft_rl`: the `sft` arm for the first half of the steps (the demonstrations of 480 rows), then GRPO
  from its last model for the second half. Half and half because it gives each stage the same number of
  optimizer steps and was fixed before any run: a split picked where `sft` saturates on this toy would
  tune the baseline on the test;
- `relift_paper`: ReLIFT with the paper's interleaving (`interleave=paper`);
- `relift`: ReLIFT as relift recommends it, the configuration `make demo` runs.

Held-out accuracy is greedy, on 640 fresh questions per type (never in training; standard error at
most 2 points per type), every `trainer.test_freq` steps: by veRL's validation for the RL runs, and by
`relift.eval` (transformers greedy decoding, the same grading rule) on the SFT runs' saved checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from relift.cli import HelpFormatter
from relift.data import write_atomic, write_text_atomic
from relift.toy.digit_tasks import DATA_SOURCE, TYPES
from relift.toy.runs import VAL_PER_TYPE, build_inputs, held_out, read_metrics, toy_config, train, with_overall

ARMS = ("grpo", "sft", "sft_rl", "relift_paper", "relift")
# relift_paper: the paper's interleaving with the toy's M before the stabilizers (8, bench/README.md's sweep).
RL_ARMS = {"grpo": ["relift.enable=false"], "relift": [],
           "relift_paper": ["interleave=paper", "relift.sft_trigger_size=8", "relift.sft_micro_batch_size_per_gpu=8"]}
SFT_RL_SPLIT = 0.5
SFT_MICRO_BATCH = 8  # veRL's SFT trainer: demonstrations per forward pass (the gradient does not depend on it)
KEPT, NEVER_SOLVED = "copy", ("inc", "dbl")
TARGETS = (
    f"relift held-out {KEPT} >= 0.80 at every validation",
    "relift overall >= sft - 0.02",
    "relift overall >= sft_rl - 0.02",
    "relift demos_used <= 0.30 x sft",
    "relift inc and dbl >= grpo + 0.20",
    "relift step time <= 1.10 x grpo",
)


def step_time(rows: list[dict]) -> float:
    """Mean seconds per training step, over the steps without validation (veRL's step timer includes
    some validations and not others)."""
    times = [r["timing_s/step"] for r in rows if "timing_s/testing" not in r]
    return sum(times) / len(times)


def curve_fields(curve: list[tuple[int, dict[str, float]]]) -> dict:
    """The result's held-out fields from a curve of (step, {type: accuracy, "overall": ...})."""
    return {
        "final": {"overall": curve[-1][1]["overall"], "per_type": {t: curve[-1][1][t] for t in TYPES}},
        "curve": [[s, v["overall"]] for s, v in curve],
        "curve_per_type": {t: [[s, v[t]] for s, v in curve] for t in TYPES},
    }


def run_rl(arm: str, inputs: dict, work: str, steps: int, seed: int, overrides: list[str]) -> dict:
    start = time.time()
    overrides = [
        *overrides,
        f"trainer.experiment_name={os.path.basename(arm)}",
        f"data.seed={seed}",
        f"actor_rollout_ref.rollout.seed={seed}",
        f"actor_rollout_ref.actor.data_loader_seed={seed}",
    ]
    metrics_path = train(inputs, os.path.join(work, arm), steps, overrides)
    rows, curve = read_metrics(metrics_path), held_out(metrics_path)
    last = rows[-1]
    return {
        **curve_fields(curve),
        "demos_used": int(last.get("relift/demos_used", 0)),
        "demos_available": len(rows) * toy_config().data.train_batch_size,
        "step_time_s": step_time(rows),
        "wall_s": time.time() - start,
        "sft_updates": int(last.get("relift/sft_updates_total", 0)),
        "sft_time_s": sum(r.get("timing_s/relift_sft", 0.0) for r in rows) / len(rows),
        "buffer_size": [[r["step"], r["relift/buffer_size"]] for r in rows if "relift/buffer_size" in r],
        "sft_updates_per_step": [[r["step"], r["relift/sft_updates"]] for r in rows if "relift/sft_updates" in r],
    }


def evaluate_greedy(model: str, val: str, out: str, name: str) -> dict[str, float]:
    """Held-out accuracy per type of one saved model, by `python -m relift.eval run` (greedy)."""
    subprocess.run(
        [sys.executable, "-m", "relift.eval", "run", model, "--name", name, "--data", val, "--out", out,
         "--temperature", "0", "--max-new-tokens", str(toy_config().data.max_response_length),
         "--batch-size", "640"],
        check=True, stdout=subprocess.DEVNULL,
    )
    with open(os.path.join(out, name, "summary.json")) as f:
        summary = json.load(f)
    return with_overall({t: summary[DATA_SOURCE.format(t)]["avg@1"] for t in TYPES})


def run_sft(inputs: dict, work: str, steps: int, seed: int, name: str = "sft") -> dict:
    """veRL's SFT trainer for `steps` steps; its HF model every test_freq steps is evaluated greedily."""
    start = time.time()
    toy = toy_config()
    run_dir, test_freq = os.path.join(work, name), toy.trainer.test_freq
    # veRL's SFT trainer resumes from a run directory's checkpoints and relift.eval skips samples it
    # finds: a rerun starts clean.
    shutil.rmtree(run_dir, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "relift.sft_baseline", "--train", inputs["train"], "--model", inputs["model"],
         "--out", run_dir, "--steps", str(steps), "--batch-size", str(toy.data.train_batch_size),
         "--lr", str(toy.relift.optim.lr), "--save-freq", str(test_freq), "--device", "cpu",
         f"data.micro_batch_size_per_gpu={SFT_MICRO_BATCH}", f"trainer.seed={seed}"],
        check=True, stdout=subprocess.DEVNULL,
    )
    train_s = time.time() - start
    eval_dir = os.path.join(run_dir, "eval")
    curve = [(0, evaluate_greedy(inputs["model"], inputs["val"], eval_dir, "step0"))]
    for step in range(test_freq, steps + 1, test_freq):
        model = os.path.join(run_dir, "checkpoints", f"global_step_{step}", "huggingface")
        curve.append((step, evaluate_greedy(model, inputs["val"], eval_dir, f"step{step}")))
    batch = toy.data.train_batch_size
    return {
        **curve_fields(curve),
        "demos_used": steps * batch,
        "demos_available": steps * batch,
        "step_time_s": train_s / steps,
        "wall_s": time.time() - start,
        "model": os.path.join(run_dir, "checkpoints", f"global_step_{steps}", "huggingface"),
    }


def run_sft_rl(inputs: dict, work: str, steps: int, seed: int) -> dict:
    """`sft` for SFT_RL_SPLIT of the steps, then GRPO from its last model; one curve over both stages."""
    start = time.time()
    sft_steps = int(steps * SFT_RL_SPLIT)
    sft = run_sft(inputs, work, sft_steps, seed, name="sft_rl/sft")
    rl = run_rl("sft_rl/rl", {**inputs, "model": sft["model"]}, work, steps - sft_steps, seed, RL_ARMS["grpo"])
    curve = {t: sft["curve_per_type"][t] + [[s + sft_steps, v] for s, v in rl["curve_per_type"][t] if s > 0]
             for t in TYPES}
    overall = sft["curve"] + [[s + sft_steps, v] for s, v in rl["curve"] if s > 0]
    return {
        "final": rl["final"],
        "curve": overall,
        "curve_per_type": curve,
        "demos_used": sft["demos_used"],
        "demos_available": sft["demos_available"] + rl["demos_available"],
        "step_time_s": (sft["step_time_s"] * sft_steps + rl["step_time_s"] * (steps - sft_steps)) / steps,
        "wall_s": time.time() - start,
    }


def run_arm(arm: str, inputs: dict, work: str, steps: int, seed: int) -> dict:
    if arm == "sft":
        return run_sft(inputs, work, steps, seed)
    if arm == "sft_rl":
        return run_sft_rl(inputs, work, steps, seed)
    return run_rl(arm, inputs, work, steps, seed, RL_ARMS[arm])


def run_seed(seed: int, steps: int, work: str, arms: tuple[str, ...]) -> dict[str, dict]:
    work = os.path.abspath(os.path.join(work, f"seed{seed}"))
    inputs = build_inputs(work, steps, seed)
    results = {}
    for arm in arms:
        print(f"[toy_repro] seed {seed}: {arm}", flush=True)
        results[arm] = run_arm(arm, inputs, work, steps, seed)
        final = results[arm]["final"]
        print(f"[toy_repro] seed {seed}: {arm} held-out {final['overall']:.3f} "
              + " ".join(f"{t} {v:.3f}" for t, v in final["per_type"].items())
              + f" | demos used {results[arm]['demos_used']} | {results[arm]['wall_s']:.0f} s", flush=True)
    return results


def lowest(result: dict, kind: str = KEPT) -> float:
    """The lowest held-out accuracy of one type over a run's validations, step 0 included."""
    return min(acc for _, acc in result["curve_per_type"][kind])


def target_checks(seed_result: dict[str, dict]) -> list[tuple[str, float, bool]]:
    """(target, measured margin, met) for one seed; a margin >= 0 meets the target."""
    relift, grpo, sft, sft_rl = (seed_result[arm] for arm in ("relift", "grpo", "sft", "sft_rl"))
    never = min(relift["final"]["per_type"][t] - grpo["final"]["per_type"][t] for t in NEVER_SOLVED)
    margins = [
        lowest(relift) - 0.80,
        relift["final"]["overall"] - sft["final"]["overall"] + 0.02,
        relift["final"]["overall"] - sft_rl["final"]["overall"] + 0.02,
        0.30 - relift["demos_used"] / sft["demos_used"],
        never - 0.20,
        1.10 - relift["step_time_s"] / grpo["step_time_s"],
    ]
    return [(name, margin, margin >= 0) for name, margin in zip(TARGETS, margins, strict=True)]


def _spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    return f"{mean:.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"


def markdown(result: dict) -> str:
    arms = [a for a in ARMS if a in result["arms"]]
    seeds = sorted(result["arms"][arms[0]]["seeds"], key=int)

    def values(arm: str, get) -> list[float]:
        return [get(result["arms"][arm]["seeds"][s]) for s in seeds]

    rows = [("held-out overall", lambda r: r["final"]["overall"])]
    rows += [(f"held-out {t}", lambda r, t=t: r["final"]["per_type"][t]) for t in TYPES]
    rows += [(f"lowest held-out {KEPT} over the run", lowest)]
    rows += [("demos used", lambda r: r["demos_used"]), ("seconds per step", lambda r: r["step_time_s"]),
             ("wall seconds", lambda r: r["wall_s"])]
    lines = [f"Mean ± standard deviation over seeds {', '.join(seeds)}; held-out accuracy is greedy on "
             f"{VAL_PER_TYPE} fresh questions per type.", "",
             "| metric | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(_spread(values(arm, get)) for arm in arms) + " |")
    if set(ARMS) <= set(arms):
        lines += ["", "| target | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
        checks = {s: target_checks({a: result["arms"][a]["seeds"][s] for a in ARMS}) for s in seeds}
        for i, name in enumerate(TARGETS):
            cells = [f"{'met' if checks[s][i][2] else 'missed'} ({checks[s][i][1]:+.3f})" for s in seeds]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in ARMS if a in result["arms"]]
    panels = (*TYPES, "overall")
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows + 1, 2, figsize=(10, 3 * (rows + 1)), sharex=True)
    colors = {"grpo": "tab:blue", "sft": "tab:gray", "sft_rl": "tab:purple", "relift_paper": "tab:orange",
              "relift": "tab:red"}
    for ax in axes[:rows].flat[len(panels):]:
        ax.axis("off")
    for ax, panel in zip(axes[:rows].flat, panels):
        for arm in arms:
            for i, (seed, r) in enumerate(sorted(result["arms"][arm]["seeds"].items())):
                curve = r["curve"] if panel == "overall" else r["curve_per_type"][panel]
                ax.plot([s for s, _ in curve], [v for _, v in curve], marker="o", color=colors[arm], alpha=0.8,
                        linestyle="-" if i == 0 else "--", label=f"{arm} seed {seed}")
        ax.set_title(f"held-out {panel}")
        ax.set_ylim(-0.02, 1.02)
    axes[0, 0].legend(fontsize=7)
    for arm in ("relift_paper", "relift"):
        for i, (seed, r) in enumerate(sorted(result["arms"].get(arm, {"seeds": {}})["seeds"].items())):
            style = "-" if i == 0 else "--"
            label = f"{arm} seed {seed}"
            axes[rows, 0].plot(*zip(*r["buffer_size"], strict=True), style, color=colors[arm], label=label)
            per_step = r["sft_updates_per_step"]
            updates = [[s, sum(u for t, u in per_step if t <= s)] for s, _ in per_step]
            axes[rows, 1].plot(*zip(*updates, strict=True), style, color=colors[arm], label=label)
    axes[rows, 0].set_title("buffer size")
    axes[rows, 1].set_title("supervised updates so far")
    axes[rows, 0].legend(fontsize=7)
    for ax in axes[rows]:
        ax.set_xlabel("training step")
    fig.suptitle("GRPO, SFT, SFT->RL and ReLIFT on the digit-task toy (tiny Qwen2 warm-started on copy)")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--seed", type=int, nargs="+", default=[1])
    parser.add_argument("--out", required=True, help="result JSON; with several seeds a .png and .md beside it")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--work", default="outputs/bench", help="where data, models and runs go")
    args = parser.parse_args(argv)
    start = time.time()
    result = {"steps": args.steps, "val_per_type": VAL_PER_TYPE, "arms": {arm: {"seeds": {}} for arm in args.arms}}
    for seed in args.seed:
        for arm, r in run_seed(seed, args.steps, args.work, tuple(args.arms)).items():
            result["arms"][arm]["seeds"][str(seed)] = r
        # Written after every seed, so that an interrupted bench keeps what it finished.
        write_text_atomic(args.out, json.dumps(result, indent=2))
    result["wall_s"] = time.time() - start
    write_text_atomic(args.out, json.dumps(result, indent=2))
    table = markdown(result)
    stem = os.path.splitext(args.out)[0]
    write_text_atomic(stem + ".md", table + "\n")
    plot(result, stem + ".png")
    print("\n" + table + f"\n\nbench wall time {result['wall_s'] / 60:.1f} min; results in {stem}.{{json,md,png}}")


if __name__ == "__main__":
    main()
