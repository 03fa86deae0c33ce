"""`make demo`: a real ReLIFT run on CPU with a tiny model and data built offline.

    python -m relift.demo --out outputs/cpu-demo [--steps 60] [--seed 0] [hydra overrides ...]

1. digit-task questions with demonstrations (relift/toy/digit_tasks.py: copy, inc, dbl of five digits),
   enough for --steps steps, and 640 fresh held-out questions per type;
2. a tiny Qwen2 model and tokenizer, warm-started on `copy` only (relift/toy/tiny_model.py), so RL has
   questions it sometimes solves and ReLIFT has questions (`inc`, `dbl`) it never does;
3. `python -m relift.main device=cpu toy=digits ...`: veRL's RayPPOTrainer loop with ReLIFTTrainer's
   hooks, held-out accuracy per type by veRL's validation (greedy) before training and every 10 steps;
4. from veRL's metrics log: a PNG plot, a summary, and the final model in Hugging Face format.

Outputs in --out: metrics.jsonl (veRL's file logger: one {"step", "data"} object per step), relift.png,
summary.json, final_model/ (loads with transformers), checkpoints/, train.log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

from relift import accounting
from relift.checkpoints import SUMMARY_FILE
from relift.cli import HelpFormatter
from relift.data import write_atomic, write_text_atomic
from relift.toy.digit_tasks import TYPES
from relift.toy.runs import VAL_PER_TYPE, build_inputs, held_out, latest_hf_model, read_metrics, train


def plot(rows: list[dict], curve: list[tuple[int, dict]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(7, 8), sharex=True, gridspec_kw={"height_ratios": [2, 1, 1]})
    for name in (*TYPES, "overall"):
        axes[0].plot([s for s, _ in curve], [v[name] for _, v in curve], marker="o",
                     linewidth=2.5 if name == "overall" else 1.5, color="black" if name == "overall" else None,
                     label=name)
    axes[0].axhline(KEPT_FLOOR, color="gray", linestyle=":", linewidth=1, label=f"{KEPT} floor {KEPT_FLOOR:.2f}")
    axes[0].set_ylabel("held-out accuracy (greedy)")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend(loc="best")
    axes[1].plot(steps, [r["relift/buffer_size"] for r in rows], marker=".", color="tab:orange", label="buffer size")
    axes[1].plot(steps, [r["relift/hardest_in_batch"] for r in rows], marker=".", color="tab:red", alpha=0.6,
                 label="hardest in batch")
    axes[1].legend(loc="best")
    axes[2].bar(steps, [r["relift/sft_updates"] for r in rows], color="tab:green")
    axes[2].set_ylabel("supervised updates")
    axes[2].set_xlabel("training step")
    fig.suptitle(title)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


KEPT = "copy"  # what the warm start knew
KEPT_FLOOR = 0.80


def summarize(rows: list[dict], curve: list[tuple[int, dict]], wall_s: float, compute: dict) -> dict:
    last = rows[-1]
    lowest_step, lowest = min(((step, acc[KEPT]) for step, acc in curve), key=lambda x: (x[1], x[0]))
    return {
        "steps": last["step"],
        "held_out_before": curve[0][1],
        "held_out_after": curve[-1][1],
        "held_out_curve": curve,
        f"lowest_{KEPT}": {"step": lowest_step, "accuracy": lowest},
        "kept_what_it_knew": lowest >= KEPT_FLOOR,
        "hardest_questions_seen": int(last["relift/hardest_seen_total"]),
        "supervised_updates": int(last["relift/sft_updates_total"]),
        "demos_used": int(last["relift/demos_used"]),
        "demos_used_frac": last["relift/demos_used_frac"],
        "seconds_per_step": sum(r["timing_s/step"] for r in rows) / len(rows),
        "wall_time_s": round(wall_s, 1),
        "compute": compute,
    }


def knowledge_verdict(lowest: dict, final: float) -> str:
    """kept (held-out KEPT never under KEPT_FLOOR), dipped (under it, back above it at the end) or LOST."""
    where = f"held-out {KEPT} {lowest['accuracy']:.2f} at its lowest (step {lowest['step']}; floor {KEPT_FLOOR:.2f})"
    if lowest["accuracy"] >= KEPT_FLOOR:
        return f"kept: {where}"
    return f"{'dipped' if final >= KEPT_FLOOR else 'LOST'}: {where}, {final:.2f} at the end"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", default="outputs/cpu-demo")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="extra hydra overrides for relift.main")
    args = parser.parse_args(argv)
    start = time.time()
    out = os.path.abspath(args.out)
    inputs = build_inputs(out, args.steps, args.seed)
    metrics_path = train(inputs, out, args.steps, ["trainer.experiment_name=cpu-demo", *args.overrides])
    rows, curve = read_metrics(metrics_path), held_out(metrics_path)

    final_model = os.path.join(out, "final_model")
    shutil.rmtree(final_model, ignore_errors=True)
    shutil.copytree(latest_hf_model(os.path.join(out, "checkpoints")), final_model)
    plot(rows, curve, os.path.join(out, "relift.png"), "ReLIFT on CPU: tiny Qwen2 warm-started on copy")
    compute = accounting.load(os.path.join(out, "checkpoints", SUMMARY_FILE))
    summary = summarize(rows, curve, time.time() - start, compute.summary())
    write_text_atomic(os.path.join(out, SUMMARY_FILE), json.dumps(summary, indent=2))

    before, after = summary["held_out_before"], summary["held_out_after"]
    lowest = summary[f"lowest_{KEPT}"]
    print("\n=== ReLIFT CPU demo ===")
    print(f"steps                    {summary['steps']}")
    print(f"held-out accuracy        {'  '.join(f'{t} {before[t]:.2f}->{after[t]:.2f}' for t in (*TYPES, 'overall'))}")
    print(f"                         (greedy, {VAL_PER_TYPE} fresh questions per type, every 10 steps)")
    print("curve (overall)          " + " -> ".join(f"{acc['overall']:.2f}" for _, acc in curve))
    print(f"what the warm start knew {knowledge_verdict(lowest, after[KEPT])}")
    print(f"hardest questions seen   {summary['hardest_questions_seen']}")
    print(f"supervised updates       {summary['supervised_updates']}")
    print(f"demonstrations used      {summary['demos_used']} "
          f"({summary['demos_used_frac']:.1%} of the training questions)")
    print(f"wall time                {summary['wall_time_s']:.0f} s ({summary['seconds_per_step']:.1f} s per step)")
    print(f"outputs                  {out}/{{metrics.jsonl, relift.png, summary.json, final_model/}}")


if __name__ == "__main__":
    main()
