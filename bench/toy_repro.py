"""The paper's comparison in miniature, on CPU, at equal compute: GRPO, SFT, SFT->RL (with all the
demonstrations and with as many as ReLIFT used) and ReLIFT (the paper's and relift's recommended settings)
on the digit-task toy, every budget counted.

    python -m bench.toy_repro --seed 1 --out outputs/bench/seed1.json             # one seed, six arms
    make bench   # = python -m bench.toy_repro --seed 1 2 3 --out bench/results/toy_repro.json: + PNG + table
    python -m bench.toy_repro --seed 1 --arms relift sft --frontier 8 16 --out ...  # + the frontier
    python -m bench.toy_repro --seed 1 2 3 --out ... --resume  # runs only what --out's results lack

For each seed: digit-task data (relift/toy/digit_tasks.py: copy / inc / dbl of five digits), a tiny
Qwen2 warm-started on `copy` only, shared by every arm, which see the same training rows (960) with the
same seeds. The budget rules, fixed before the runs (bench/budget_rules.py holds the numbers):

- `relift`: ReLIFT as relift recommends it (the configuration `make demo` runs), 60 RL steps. Its compute
  (FLOPs, relift.accounting's estimate) is the budget of every other arm with an RL stage;
- `grpo` (`relift.enable=false`, veRL's GRPO) and `relift_paper` (`interleave=paper`, the toy's M=8 from
  bench/README.md's sweep): 60 steps, then resumed from their step-60 checkpoint for as many more steps as
  bring them to `relift`'s compute at their measured FLOPs per step (never fewer than 60);
- `sft`: veRL's own SFT trainer (`python -m relift.sft_baseline`) on all the training demonstrations,
  batch 16 at ReLIFT's supervised lr (constant), run as its users run it: to its plateau on `dev.parquet`,
  questions of the training distribution that no arm trains on and that are not the held-out test. Every
  epoch is saved and graded on dev; training stops after the first epoch that gains less than one point
  over the best before it (at most 5 epochs) and keeps the best epoch. The budgets count the epochs up to
  that stop (what early stopping would have spent);
- `sft_rl`: the `sft` arm's kept model, then GRPO until the two stages together spent `relift`'s compute:
  a first leg at ~90% of what is left (at `relift`'s FLOPs per RL step), then a resume at the measured
  rate;
- `sft_rl_matched`: SFT by the same rule on a random sample of the training demonstrations as large as
  the number `relift` used, then GRPO to `relift`'s compute as `sft_rl`. It tests ReLIFT's selection: same
  demonstrations, same compute, chosen by failure or at random;
- `--frontier M ...`: `relift_mM` (`relift.sft_trigger_size=M`: M new demonstrations per supervised
  update, 60 steps) and `sft_rl_matched_mM` at its demonstrations and compute; the plot's frontier is
  held-out accuracy against demonstrations used.

Held-out accuracy is greedy, on 640 fresh questions per type (never in training; standard error at
most 2 points per type), every `trainer.test_freq` steps and at the last: by veRL's validation (vLLM)
for the RL runs, and by `relift.eval` (transformers greedy decoding, the same grading rule) for the SFT
runs' epochs. SFT steps and RL steps share the curves' x axis; compute is in the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

import pandas as pd

from bench.budget_rules import (
    COMPUTE_TOLERANCE,
    SFT_MAX_EPOCHS,
    first_leg_steps,
    sft_stop,
    sft_until,
    steps_to_budget,
    within,
)
from relift.accounting import Account, combine
from relift.checkpoints import SUMMARY_FILE
from relift.cli import HelpFormatter
from relift.data import write_atomic, write_parquet_atomic, write_text_atomic
from relift.sft_baseline import steps_per_epoch
from relift.toy.digit_tasks import DATA_SOURCE, TYPES
from relift.toy.runs import VAL_PER_TYPE, build_inputs, held_out, read_metrics, toy_config, train, with_overall

# Run order: relift first, whose compute is the others' budget; sft before the arm that starts from it.
ARMS = ("relift", "grpo", "relift_paper", "sft", "sft_rl", "sft_rl_matched")
NEEDS = {"grpo": ("relift",), "relift_paper": ("relift",), "sft_rl": ("relift", "sft"), "sft_rl_matched": ("relift",)}
RL_ARMS = {"grpo": ["relift.enable=false"], "relift": [],
           "relift_paper": ["interleave=paper", "relift.sft_trigger_size=8", "relift.sft_micro_batch_size_per_gpu=8"]}
RL_STEPS = 60
DEV_PER_TYPE = 100
SFT_MICRO_BATCH = 8  # veRL's SFT trainer: demonstrations per forward pass (the gradient does not depend on it)
KEPT, NEVER_SOLVED = "copy", ("inc", "dbl")
TARGETS = (
    f"relift held-out {KEPT} >= 0.80 at every validation",
    "relift overall >= sft - 0.02",
    "relift overall >= sft_rl - 0.02",
    "relift overall >= sft_rl_matched - 0.02",
    "relift demos_used <= 0.30 x sft",
    "relift inc and dbl >= grpo + 0.20",
    "relift step time <= 1.10 x grpo",
)
FAIRNESS = (
    *(f"{arm} compute within ±{COMPUTE_TOLERANCE:.0%} of relift's" for arm in ("grpo", "relift_paper", "sft_rl",
                                                                              "sft_rl_matched")),
    "sft_rl's SFT stage within 0.02 of sft's final inc and dbl",
)


def frontier_arms(ms: list[int]) -> tuple[str, ...]:
    return tuple(name for m in ms for name in (f"relift_m{m}", f"sft_rl_matched_m{m}"))


def matched_reference(arm: str) -> str:
    """The ReLIFT arm whose demonstrations and compute an sft_rl_matched arm matches."""
    return "relift" + arm.removeprefix("sft_rl_matched")


def arms_to_run(arms: list[str], frontier: list[int]) -> tuple[str, ...]:
    """The arms in run order; SystemExit naming an arm whose budget comes from an arm not asked for."""
    chosen = tuple(a for a in ARMS if a in arms) + frontier_arms(frontier)
    for arm in chosen:
        for need in NEEDS.get(arm, ()):
            if need not in chosen:
                raise SystemExit(f"--arms: {arm} needs {need} (its budget or its model); add it to --arms")
    return chosen


def check_resumable(result: dict, settings: dict, arms: tuple[str, ...], seeds: list[int]) -> None:
    """A resumed bench keeps all of an earlier `result` (the JSON --out holds) when it was run with the same
    `settings` (RL steps, held-out and dev sizes) and every kept SFT model that an arm still to run starts
    from is on disk. SystemExit naming the setting or the missing model otherwise."""
    for key, value in settings.items():
        if result.get(key) != value:
            raise SystemExit(f"--resume: the results were run with {key}={result.get(key)}, this bench with "
                             f"{key}={value}; give another --out or the same settings")
    for seed in map(str, seeds):
        done = {arm for arm, r in result["arms"].items() if seed in r["seeds"]}
        if "sft_rl" in arms and "sft_rl" not in done and "sft" in done:
            model = result["arms"]["sft"]["seeds"][seed]["model"]
            if not os.path.exists(model):
                raise SystemExit(f"--resume: seed {seed}'s sft_rl starts from the kept sft model {model}, which "
                                 f"is gone; give the --work that holds it, or rerun sft (remove its seed {seed})")


def step_time(rows: list[dict]) -> float:
    """Mean seconds per training step, over the steps without validation (veRL's step timer includes
    some validations and not others)."""
    times = [r["timing_s/step"] for r in rows if "timing_s/testing" not in r]
    return sum(times) / len(times)


def curve_fields(curve: list[tuple[int, dict[str, float]]], final: dict[str, float] | None = None) -> dict:
    """The result's held-out fields from a curve of (step, {type: accuracy, "overall": ...}); the final
    accuracy is the curve's last unless given (an SFT run keeps its best epoch)."""
    final = final or curve[-1][1]
    return {
        "final": {"overall": final["overall"], "per_type": {t: final[t] for t in TYPES}},
        "curve": [[s, v["overall"]] for s, v in curve],
        "curve_per_type": {t: [[s, v[t]] for s, v in curve] for t in TYPES},
    }


def read_summary(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def rl_flops_per_step(summary: dict) -> float:
    """FLOPs per step of a run's RL work alone (its supervised updates' left out)."""
    return dataclasses.replace(Account.from_summary(summary), tokens_in_sft_updates=0).flops / summary["steps"]


def run_rl(arm: str, inputs: dict, work: str, seed: int, overrides: list[str], steps: int,
           budget: float | None = None) -> dict:
    """A relift.main run of `steps` steps; with a compute `budget`, resumed from its last checkpoint for as
    many more steps as reach it at the run's FLOPs per step so far."""
    start = time.time()
    run_dir = os.path.join(work, arm)
    epoch_steps = len(pd.read_parquet(inputs["train"], columns=["data_source"])) // toy_config().data.train_batch_size
    overrides = [
        *overrides,
        f"trainer.experiment_name={os.path.basename(arm)}",
        f"data.seed={seed}",
        f"actor_rollout_ref.rollout.seed={seed}",
        f"actor_rollout_ref.actor.data_loader_seed={seed}",
    ]
    legs = [train(inputs, run_dir, steps, [*overrides, f"trainer.total_epochs={math.ceil(steps / epoch_steps)}"])]
    summary_path = os.path.join(run_dir, "checkpoints", SUMMARY_FILE)
    summary = read_summary(summary_path)
    total = steps if budget is None else steps_to_budget(steps, summary["flops"], budget)
    if total > steps:
        print(f"[toy_repro] {arm}: {summary['flops']:.3g} FLOPs in {steps} steps; resuming to step {total} for "
              f"{budget:.3g}", flush=True)
        epochs = math.ceil(total / epoch_steps)
        legs.append(train(inputs, run_dir, total, [*overrides, f"trainer.total_epochs={epochs}"], resume=True))
        summary = read_summary(summary_path)
    # Each leg's rows after the step the one before ended (a resume validates its first step again).
    rows, curve, done = [], [], -1
    for path in legs:
        leg_rows = [r for r in read_metrics(path) if r["step"] > done]
        curve += [(s, v) for s, v in held_out(path) if s > done]
        rows += leg_rows
        done = rows[-1]["step"]
    last = rows[-1]
    return {
        **curve_fields(curve),
        "steps": total,
        "account": summary,
        "demos_used": int(last.get("relift/demos_used", 0)),
        "demos_available": summary["demos_available"],
        "step_time_s": step_time(rows),
        "wall_s": time.time() - start,
        "sft_time_s": sum(r.get("timing_s/relift_sft", 0.0) for r in rows) / len(rows),
        "buffer_size": [[r["step"], r["relift/buffer_size"]] for r in rows if "relift/buffer_size" in r],
    }


def evaluate_greedy(models: dict[str, str], data: str, out: str) -> dict[str, dict[str, float]]:
    """Accuracy per type (and overall) of each named model on `data`, greedy, by one
    `python -m relift.eval run` with transformers."""
    names = list(models)
    subprocess.run(
        [sys.executable, "-m", "relift.eval", "run", *models.values(), "--name", *names, "--data", data,
         "--out", out, "--backend", "hf", "--temperature", "0",
         "--max-new-tokens", str(toy_config().data.max_response_length), "--batch-size", "640"],
        check=True, stdout=subprocess.DEVNULL,
    )
    scores = {}
    for name in names:
        summary = read_summary(os.path.join(out, name, "summary.json"))
        scores[name] = with_overall({t: summary[DATA_SOURCE.format(t)]["avg@1"] for t in TYPES})
    return scores


def run_sft(name: str, inputs: dict, work: str, seed: int, train_file: str) -> dict:
    """veRL's SFT trainer on `train_file` by the plateau rule (module docstring): SFT_MAX_EPOCHS epochs, each
    saved and graded on dev; the result is the kept epoch's, the budgets those up to the stop."""
    start = time.time()
    toy = toy_config()
    run_dir, batch = os.path.join(work, name), toy.data.train_batch_size
    # veRL's SFT trainer resumes from a run directory's checkpoints and relift.eval skips samples it
    # finds: a rerun starts clean.
    shutil.rmtree(run_dir, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "relift.sft_baseline", "--train", train_file, "--model", inputs["model"],
         "--out", run_dir, "--epochs", str(SFT_MAX_EPOCHS), "--batch-size", str(batch),
         "--lr", str(toy.relift.optim.lr), "--save-freq", "after_each_epoch", "--device", "cpu",
         f"data.micro_batch_size_per_gpu={SFT_MICRO_BATCH}", f"trainer.seed={seed}"],
        check=True, stdout=subprocess.DEVNULL,
    )
    train_s = time.time() - start
    per_epoch = steps_per_epoch(len(pd.read_parquet(train_file, columns=["data_source"])), batch, 1)
    epochs = {f"epoch{e}": os.path.join(run_dir, "checkpoints", f"global_step_{e * per_epoch}", "huggingface")
              for e in range(1, SFT_MAX_EPOCHS + 1)}
    eval_dir = os.path.join(run_dir, "eval")
    dev = evaluate_greedy(epochs, inputs["dev"], os.path.join(eval_dir, "dev"))
    trained, kept = sft_stop([dev[f"epoch{e}"]["overall"] for e in range(1, SFT_MAX_EPOCHS + 1)])
    graded = {"step0": inputs["model"], **{f"epoch{e}": epochs[f"epoch{e}"] for e in range(1, trained + 1)}}
    test = evaluate_greedy(graded, inputs["val"], os.path.join(eval_dir, "test"))
    curve = [(0, test["step0"])] + [(e * per_epoch, test[f"epoch{e}"]) for e in range(1, trained + 1)]
    summary = sft_until(read_summary(os.path.join(run_dir, SUMMARY_FILE)), trained, SFT_MAX_EPOCHS)
    return {
        **curve_fields(curve, final=test[f"epoch{kept}"]),
        "steps": summary["steps"],
        "account": summary,
        "sft_epochs": {"trained": trained, "kept": kept, "dev_overall": [dev[f"epoch{e}"]["overall"]
                                                                         for e in range(1, SFT_MAX_EPOCHS + 1)]},
        "demos_used": summary["demos_used"],
        "demos_available": summary["demos_available"],
        "step_time_s": train_s / (SFT_MAX_EPOCHS * per_epoch),
        "wall_s": time.time() - start,
        "model": epochs[f"epoch{kept}"],
    }


def run_sft_rl(arm: str, sft: dict, inputs: dict, work: str, seed: int, budget: float, rl_rate: float) -> dict:
    """GRPO from an SFT stage's kept model until the two stages spent `budget` FLOPs: a first leg at
    `rl_rate` FLOPs a step, then run_rl's resume at the measured rate."""
    start = time.time()
    left = budget - sft["account"]["flops"]
    rl = run_rl(f"{arm}/rl", {**inputs, "model": sft["model"]}, work, seed, RL_ARMS["grpo"],
                steps=first_leg_steps(left, rl_rate), budget=left)
    account = combine(arm, [Account.from_summary(sft["account"]), Account.from_summary(rl["account"])]).summary()
    offset = sft["steps"]
    curve = {t: sft["curve_per_type"][t] + [[s + offset, v] for s, v in rl["curve_per_type"][t] if s > 0]
             for t in TYPES}
    return {
        "final": rl["final"],
        "curve": sft["curve"] + [[s + offset, v] for s, v in rl["curve"] if s > 0],
        "curve_per_type": curve,
        "before_rl": {t: rl["curve_per_type"][t][0][1] for t in TYPES},
        "steps": offset + rl["steps"],
        "rl_steps": rl["steps"],
        "account": account,
        "sft_epochs": sft["sft_epochs"],
        "demos_used": sft["demos_used"],
        "demos_available": sft["demos_available"],
        "step_time_s": rl["step_time_s"],
        "wall_s": sft["wall_s"] + time.time() - start,
    }


def run_arm(arm: str, inputs: dict, work: str, seed: int, steps: int, done: dict[str, dict]) -> dict:
    if arm == "relift" or arm in RL_ARMS or arm.startswith("relift_m"):
        overrides = RL_ARMS[arm] if arm in RL_ARMS else [f"relift.sft_trigger_size={arm.removeprefix('relift_m')}"]
        budget = done["relift"]["account"]["flops"] if arm in NEEDS else None
        return run_rl(arm, inputs, work, seed, overrides, steps, budget)
    if arm == "sft":
        return run_sft(arm, inputs, work, seed, inputs["train"])
    reference = done["relift" if arm == "sft_rl" else matched_reference(arm)]
    budget, rate = reference["account"]["flops"], rl_flops_per_step(reference["account"])
    if arm == "sft_rl":
        return run_sft_rl(arm, done["sft"], inputs, work, seed, budget, rate)
    # sft_rl_matched*: as many training demonstrations as the reference used, drawn at random.
    sample = os.path.join(work, arm, "demonstrations.parquet")
    frame = pd.read_parquet(inputs["train"])
    write_parquet_atomic(frame.sample(n=reference["demos_used"], random_state=seed), sample)
    sft = run_sft(f"{arm}/sft", inputs, work, seed, sample)
    return run_sft_rl(arm, sft, inputs, work, seed, budget, rate)


def run_seed(seed: int, work: str, arms: tuple[str, ...], steps: int, record, done: dict[str, dict]) -> None:
    """Every arm of one seed that `done` lacks, in order; `record(arm, result)` after each (an interrupted
    bench keeps them)."""
    work = os.path.abspath(os.path.join(work, f"seed{seed}"))
    inputs = build_inputs(work, steps, seed, dev_per_type=DEV_PER_TYPE)
    results = dict(done)
    for arm in arms:
        if arm in results:
            print(f"[toy_repro] seed {seed}: {arm} kept from the results resumed", flush=True)
            continue
        print(f"[toy_repro] seed {seed}: {arm}", flush=True)
        results[arm] = r = run_arm(arm, inputs, work, seed, steps, results)
        print(f"[toy_repro] seed {seed}: {arm} held-out {r['final']['overall']:.3f} "
              + " ".join(f"{t} {v:.3f}" for t, v in r["final"]["per_type"].items())
              + f" | demos used {r['demos_used']} | {r['account']['flops']:.3g} FLOPs | {r['wall_s']:.0f} s",
              flush=True)
        record(arm, r)


def lowest(result: dict, kind: str = KEPT) -> float:
    """The lowest held-out accuracy of one type over a run's validations, step 0 included."""
    return min(acc for _, acc in result["curve_per_type"][kind])


def target_checks(seed_result: dict[str, dict]) -> list[tuple[str, float, bool]]:
    """(target, measured margin, met) for one seed, relift's targets then the fairness rules; a margin >= 0
    meets the target."""
    r = seed_result
    relift, grpo, sft = r["relift"], r["grpo"], r["sft"]
    never = min(relift["final"]["per_type"][t] - grpo["final"]["per_type"][t] for t in NEVER_SOLVED)
    budget = relift["account"]["flops"]
    margins = [
        lowest(relift) - 0.80,
        relift["final"]["overall"] - sft["final"]["overall"] + 0.02,
        relift["final"]["overall"] - r["sft_rl"]["final"]["overall"] + 0.02,
        relift["final"]["overall"] - r["sft_rl_matched"]["final"]["overall"] + 0.02,
        0.30 - relift["demos_used"] / sft["demos_used"],
        never - 0.20,
        1.10 - relift["step_time_s"] / grpo["step_time_s"],
        *(within(r[arm]["account"]["flops"], budget) for arm in ("grpo", "relift_paper", "sft_rl", "sft_rl_matched")),
        0.02 - max(abs(r["sft_rl"]["before_rl"][t] - sft["final"]["per_type"][t]) for t in NEVER_SOLVED),
    ]
    return [(name, margin, margin >= 0) for name, margin in zip(TARGETS + FAIRNESS, margins, strict=True)]


def _spread(values: list[float | None], form: str = "{:.3f}") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return form.format(values[0])
    return f"{form.format(statistics.mean(values))} ± {form.format(statistics.stdev(values))}"


def markdown(result: dict) -> str:
    arms = [a for a in result["arms"] if result["arms"][a]["seeds"]]
    seeds = sorted({s for arm in arms for s in result["arms"][arm]["seeds"]}, key=int)

    def values(arm: str, get) -> list[float]:
        return [get(result["arms"][arm]["seeds"][s]) for s in seeds if s in result["arms"][arm]["seeds"]]

    rows = [("held-out overall", lambda r: r["final"]["overall"], "{:.3f}")]
    rows += [(f"held-out {t}", lambda r, t=t: r["final"]["per_type"][t], "{:.3f}") for t in TYPES]
    rows += [
        (f"lowest held-out {KEPT} over the run", lowest, "{:.3f}"),
        ("demonstrations used", lambda r: r["demos_used"], "{:.0f}"),
        ("RL optimizer steps", lambda r: r["account"]["rl_updates"], "{:.0f}"),
        ("supervised optimizer steps", lambda r: r["account"]["sft_updates"], "{:.0f}"),
        ("compute, TFLOPs (estimate)", lambda r: r["account"]["flops"] / 1e12, "{:.2f}"),
        ("SFT epochs trained", lambda r: r.get("sft_epochs", {}).get("trained"), "{:.1f}"),
        ("seconds per step", lambda r: r["step_time_s"], "{:.2f}"),
        ("wall seconds", lambda r: r["wall_s"], "{:.0f}"),
    ]
    lines = [f"Mean ± standard deviation over seeds {', '.join(seeds)}; held-out accuracy is greedy on "
             f"{VAL_PER_TYPE} fresh questions per type; compute by relift.accounting's estimate.", "",
             "| metric | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
    for label, get, form in rows:
        lines.append(f"| {label} | " + " | ".join(_spread(values(arm, get), form) for arm in arms) + " |")
    if "relift" in arms:
        relift = result["arms"]["relift"]["seeds"]
        shares = [_spread([r["account"]["flops"] / relift[s]["account"]["flops"]
                           for s, r in result["arms"][arm]["seeds"].items() if s in relift], "{:.3f}") for arm in arms]
        lines.append("| compute / relift's | " + " | ".join(shares) + " |")
    complete = [s for s in seeds if all(s in result["arms"].get(a, {"seeds": {}})["seeds"] for a in ARMS)]
    if complete:
        lines += ["", "| target | " + " | ".join(f"seed {s}" for s in complete) + " |",
                  "|---|" + "---|" * len(complete)]
        checks = {s: target_checks({a: result["arms"][a]["seeds"][s] for a in ARMS}) for s in complete}
        for i, name in enumerate(TARGETS + FAIRNESS):
            cells = [f"{'met' if checks[s][i][2] else 'missed'} ({checks[s][i][1]:+.3f})" for s in complete]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


COLORS = {"grpo": "tab:blue", "sft": "tab:gray", "sft_rl": "tab:purple", "sft_rl_matched": "tab:green",
          "relift_paper": "tab:orange", "relift": "tab:red"}


def color(arm: str) -> str:
    return COLORS.get(arm, COLORS["sft_rl_matched" if arm.startswith("sft_rl_matched") else "relift"])


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in result["arms"] if result["arms"][a]["seeds"]]
    panels = (*TYPES, "overall")
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows + 1, 2, figsize=(10, 3 * (rows + 1)))
    for ax, panel in zip(axes[:rows].flat, panels):
        for arm in arms:
            for i, (seed, r) in enumerate(sorted(result["arms"][arm]["seeds"].items())):
                curve = r["curve"] if panel == "overall" else r["curve_per_type"][panel]
                ax.plot([s for s, _ in curve], [v for _, v in curve], marker="o", markersize=3, color=color(arm),
                        alpha=0.8, linestyle="-" if i == 0 else "--", label=f"{arm} seed {seed}")
        ax.set_title(f"held-out {panel}")
        ax.set_xlabel("step (SFT, then RL)")
        ax.set_ylim(-0.02, 1.02)
    axes[0, 0].legend(fontsize=6)
    for arm in arms:
        for i, (seed, r) in enumerate(sorted(result["arms"][arm]["seeds"].items())):
            if r.get("buffer_size"):
                axes[rows, 0].plot(*zip(*r["buffer_size"], strict=True), "-" if i == 0 else "--", color=color(arm),
                                   label=f"{arm} seed {seed}")
    axes[rows, 0].set_title("ReLIFT's buffer size")
    axes[rows, 0].set_xlabel("RL step")
    axes[rows, 0].legend(fontsize=6)
    # The frontier: final held-out accuracy against demonstrations used, ReLIFT's selection or a random one.
    ax = axes[rows, 1]
    for family in ("relift", "sft_rl_matched"):
        members = [a for a in arms if a == family or a.startswith(family + "_m")]
        points = sorted((r["demos_used"], r["final"]["overall"]) for a in members
                        for r in result["arms"][a]["seeds"].values())
        if points:
            ax.plot(*zip(*points, strict=True), "o", color=color(family), label=family + " (M = 4, 8, 16 ...)")
    ax.set_title("frontier: held-out overall vs demonstrations")
    ax.set_xlabel("demonstrations used")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=6)
    fig.suptitle("GRPO, SFT, SFT->RL and ReLIFT on the digit-task toy at relift's compute")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--seed", type=int, nargs="+", default=[1])
    parser.add_argument("--out", required=True, help="result JSON; a .png and .md beside it")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--frontier", type=int, nargs="*", default=[],
                        help="also relift_mM and sft_rl_matched_mM for each M (relift.sft_trigger_size)")
    parser.add_argument("--steps", type=int, default=RL_STEPS,
                        help="relift's RL steps, the budget (smoke tests: fewer)")
    parser.add_argument("--work", default="outputs/bench", help="where data, models and runs go")
    parser.add_argument("--report", action="store_true", help="only write the table and plot of --out's results")
    parser.add_argument("--resume", action="store_true",
                        help="keep the results --out holds (same settings) and run only the arms and seeds they lack")
    args = parser.parse_args(argv)
    if args.report:
        return report(args.out)
    arms = arms_to_run(args.arms, args.frontier)
    start = time.time()
    settings = {"rl_steps": args.steps, "val_per_type": VAL_PER_TYPE, "dev_per_type": DEV_PER_TYPE}
    result = {**settings, "arms": {}}
    if args.resume and os.path.exists(args.out):
        with open(args.out) as f:
            result = json.load(f)
        check_resumable(result, settings, arms, args.seed)
    for arm in arms:
        result["arms"].setdefault(arm, {"seeds": {}})
    for seed in args.seed:

        def record(arm: str, r: dict, seed: int = seed) -> None:
            result["arms"][arm]["seeds"][str(seed)] = r
            write_text_atomic(args.out, json.dumps(result, indent=2))

        done = {arm: r["seeds"][str(seed)] for arm, r in result["arms"].items() if str(seed) in r["seeds"]}
        run_seed(seed, args.work, arms, args.steps, record, done)
    result["wall_s"] = result.get("wall_s", 0.0) + time.time() - start
    write_text_atomic(args.out, json.dumps(result, indent=2))
    report(args.out)


def report(path: str) -> None:
    """The table (.md) and the plot (.png) beside a result JSON, and the table on the console."""
    with open(path) as f:
        result = json.load(f)
    table = markdown(result)
    stem = os.path.splitext(path)[0]
    write_text_atomic(stem + ".md", table + "\n")
    plot(result, stem + ".png")
    wall = f"bench wall time {result['wall_s'] / 60:.1f} min; " if "wall_s" in result else ""
    print("\n" + table + f"\n\n{wall}results in {stem}.{{json,md,png}}")


if __name__ == "__main__":
    main()
