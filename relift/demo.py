"""`make demo`: a real ReLIFT run on CPU with a tiny model and data built offline.

    python -m relift.demo --out outputs/cpu-demo [--steps 60] [--seed 0] [hydra overrides ...]

1. digit-task questions with demonstrations (relift/digit_tasks.py: copy, inc, dbl of five digits),
   enough for --steps steps, and 640 fresh held-out questions per type;
2. a tiny Qwen2 model and tokenizer, warm-started on `copy` only (relift/tiny_model.py), so RL has
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
import subprocess
import sys
import time

from relift.checkpoints import latest_step
from relift.data import write_atomic, write_text_atomic
from relift.digit_tasks import DATA_SOURCE, TYPES, build

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARM_START_STEPS = 300
WARM_START_ROWS = 4096
VAL_PER_TYPE = 640


def _run(cmd: list[str], log_path: str | None = None, env: dict | None = None) -> None:
    print("$ " + " ".join(cmd), flush=True)
    if log_path is None:
        subprocess.run(cmd, check=True, env=env)
        return
    with open(log_path, "w") as log:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for line in process.stdout:
            log.write(line)
            log.flush()
            # The full veRL/Ray log goes to the file; the terminal gets ReLIFT's one line per step.
            if "[relift]" in line or "Error" in line or "Traceback" in line:
                print(line.split("[0m ", 1)[-1].rstrip(), flush=True)
        if process.wait():
            raise SystemExit(f"training failed (exit {process.returncode}); full log: {log_path}")


def toy_config() -> dict:
    """relift/config/toy/digits.yaml, the toy's one source of truth (batch size, validation frequency)."""
    import yaml

    with open(os.path.join(REPO, "relift", "config", "toy", "digits.yaml")) as f:
        return yaml.safe_load(f)


def build_inputs(out: str, steps: int, seed: int = 0, warm_start_steps: int = WARM_START_STEPS) -> dict[str, str]:
    """Digit-task data for `steps` steps of `toy=digits` batches and the warm-started tiny model under
    `out` (the model is reused when present)."""
    data_dir, model_dir = os.path.join(out, "data"), os.path.join(out, "tiny-model")
    paths = build(data_dir, train_rows=steps * toy_config()["data"]["train_batch_size"], val_per_type=VAL_PER_TYPE,
                  warm_start_rows=WARM_START_ROWS, seed=seed)
    if not os.path.exists(os.path.join(model_dir, "model.safetensors")):
        _run([sys.executable, "-m", "relift.tiny_model", "--data", paths["train"], "--out", model_dir,
              "--warm-start-data", paths["warm_start"], "--warm-start-steps", str(warm_start_steps), "--seed", str(seed)])
    return {"model": model_dir, "train": paths["train"], "val": paths["val"]}


def read_metrics(path: str) -> list[dict]:
    """veRL's file logger lines -> one dict per training step (step 0 = validation before training)."""
    rows = []
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            rows.append({"step": record["step"], **record["data"]})
    return [r for r in rows if "relift/buffer_size" in r or "critic/score/mean" in r]


def with_overall(per_type: dict[str, float]) -> dict[str, float]:
    """Accuracy per type plus "overall", their mean (the types have equally many held-out questions)."""
    return {**per_type, "overall": sum(per_type[t] for t in TYPES) / len(TYPES)}


def held_out(path: str) -> list[tuple[int, dict[str, float]]]:
    """(step, {type: accuracy, "overall": mean over types}) for every validation in a metrics log."""
    curve = []
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            data = record["data"]
            per_type = {t: data.get(f"val-core/{DATA_SOURCE.format(t)}/acc/mean@1") for t in TYPES}
            if all(v is not None for v in per_type.values()):
                curve.append((record["step"], with_overall(per_type)))
    return curve


def train(inputs: dict[str, str], run_dir: str, steps: int, overrides: list[str]) -> str:
    """One `python -m relift.main device=cpu toy=digits` run; returns the path of its metrics log."""
    ckpt_dir, metrics_path = os.path.join(run_dir, "checkpoints"), os.path.join(run_dir, "metrics.jsonl")
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    if os.path.exists(metrics_path):
        os.remove(metrics_path)
    os.makedirs(run_dir, exist_ok=True)
    command = [
        sys.executable, "-m", "relift.main",
        "device=cpu",
        "toy=digits",
        f"actor_rollout_ref.model.path={inputs['model']}",
        f"data.train_files={inputs['train']}",
        f"data.val_files={inputs['val']}",
        f"trainer.total_training_steps={steps}",
        f"trainer.save_freq={steps}",
        "trainer.logger=[file]",
        f"trainer.default_local_dir={ckpt_dir}",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
        *overrides,
    ]
    env = {**os.environ, "VERL_FILE_LOGGER_PATH": metrics_path, "PYTHONUNBUFFERED": "1"}
    _run(command, log_path=os.path.join(run_dir, "train.log"), env=env)
    return metrics_path


def latest_hf_model(ckpt_dir: str) -> str:
    """The Hugging Face model of the checkpoint veRL marked as the latest."""
    step = latest_step(ckpt_dir)
    if step is None:
        raise FileNotFoundError(f"{ckpt_dir}: no checkpoint marked as the latest")
    return os.path.join(ckpt_dir, f"global_step_{step}", "actor", "huggingface")


def plot(rows: list[dict], curve: list[tuple[int, dict]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(7, 8), sharex=True, gridspec_kw={"height_ratios": [2, 1, 1]})
    for name in (*TYPES, "overall"):
        axes[0].plot([s for s, _ in curve], [v[name] for _, v in curve], marker="o",
                     linewidth=2.5 if name == "overall" else 1.5, color="black" if name == "overall" else None, label=name)
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


def summarize(rows: list[dict], curve: list[tuple[int, dict]], wall_s: float) -> dict:
    last = rows[-1]
    return {
        "steps": last["step"],
        "held_out_before": curve[0][1],
        "held_out_after": curve[-1][1],
        "held_out_curve": curve,
        "hardest_questions_seen": int(last["relift/hardest_seen_total"]),
        "supervised_updates": int(last["relift/sft_updates_total"]),
        "demos_used": int(last["relift/demos_used"]),
        "demos_used_frac": last["relift/demos_used_frac"],
        "seconds_per_step": sum(r["timing_s/step"] for r in rows) / len(rows),
        "wall_time_s": round(wall_s, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    summary = summarize(rows, curve, time.time() - start)
    write_text_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=2))

    before, after = summary["held_out_before"], summary["held_out_after"]
    print("\n=== ReLIFT CPU demo ===")
    print(f"steps                    {summary['steps']}")
    print(f"held-out accuracy        {'  '.join(f'{t} {before[t]:.2f}->{after[t]:.2f}' for t in (*TYPES, 'overall'))}")
    print(f"                         (greedy, {VAL_PER_TYPE} fresh questions per type)")
    print(f"hardest questions seen   {summary['hardest_questions_seen']}")
    print(f"supervised updates       {summary['supervised_updates']}")
    print(f"demonstrations used      {summary['demos_used']} ({summary['demos_used_frac']:.1%} of the training questions)")
    print(f"wall time                {summary['wall_time_s']:.0f} s ({summary['seconds_per_step']:.1f} s per step)")
    print(f"outputs                  {out}/{{metrics.jsonl, relift.png, summary.json, final_model/}}")


if __name__ == "__main__":
    main()
