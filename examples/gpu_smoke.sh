#!/usr/bin/env bash
# One-GPU smoke run of the GPU path before a long job: vLLM rollouts, the FSDP actor, dynamic batching,
# 3 steps of ReLIFT with a supervised update at every step, then the same 3 steps of GRPO
# (relift.enable=false), and the actor's peak GPU memory after each step of both. ~5 minutes.
#   MODEL=/models/Qwen2.5-0.5B-Instruct bash examples/gpu_smoke.sh [overrides...]
# Without MODEL it builds relift's tiny model; the data are the digit tasks, built offline. Skipped
# (exit 0) where there is no CUDA; SMOKE_DEVICE=cpu runs the same on relift's CPU path instead.
# DRY_RUN=1 checks both arms (each arm's plan goes to its log) and trains nothing.
[ -n "${BASH_VERSION:-}" ] || { echo "[relift] run it with bash: bash $0" >&2; return 2 2>/dev/null || exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@" || return 2
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${SMOKE_DEVICE:-gpu}
if [ "$DEVICE" = gpu ] && ! python3 -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "[gpu_smoke] skipped: no CUDA device (SMOKE_DEVICE=cpu runs it on CPU)"
    exit 0
fi
OUT=${OUT:-outputs/gpu-smoke}
python3 -m relift.toy.digit_tasks --out "$OUT/data" --train-rows 48 --val-per-type 2 > /dev/null
if [ -z "${MODEL:-}" ]; then
    MODEL=$OUT/tiny-model
    python3 -m relift.toy.tiny_model --data "$OUT/data/train.parquet" --out "$MODEL" > /dev/null 2>&1
fi

for arm in relift grpo; do
    rm -f "$OUT/$arm.jsonl"
    # An untrained model solves nothing: every question is hardest, and 16 of them fill M=8 every step.
    VERL_FILE_LOGGER_PATH=$OUT/$arm.jsonl python3 -u -m relift.main device="$DEVICE" \
        actor_rollout_ref.model.path="$MODEL" \
        data.train_files="$OUT/data/train.parquet" data.val_files="$OUT/data/val.parquet" \
        relift.enable="$([ $arm = relift ] && echo true || echo false)" \
        data.train_batch_size=16 data.max_prompt_length=128 data.max_response_length=64 \
        actor_rollout_ref.actor.ppo_mini_batch_size=16 actor_rollout_ref.rollout.n=4 \
        actor_rollout_ref.actor.use_dynamic_bsz=true actor_rollout_ref.actor.ppo_max_token_len_per_gpu=4096 \
        relift.sft_trigger_size=8 relift.sft_micro_batch_size_per_gpu=null relift.max_target_len=64 \
        actor_rollout_ref.rollout.tensor_model_parallel_size=1 trainer.n_gpus_per_node=1 \
        trainer.total_epochs=1 trainer.total_training_steps=3 trainer.test_freq=-1 trainer.save_freq=-1 \
        trainer.logger='[console,file]' trainer.default_local_dir="$OUT/checkpoints/$arm" hydra.run.dir="$OUT/hydra/$arm" \
        "$@" > "$OUT/$arm.log" 2>&1 || { tail -40 "$OUT/$arm.log"; echo "[gpu_smoke] $arm failed: $OUT/$arm.log"; exit 1; }
    echo "[gpu_smoke] $arm: done ($OUT/$arm.log)"
done
if dry_run; then  # each arm printed its plan into its log; nothing trained
    exit 0
fi

python3 - "$OUT" <<'EOF'
import sys

from relift.toy.runs import read_metrics

out = sys.argv[1]
arms = {arm: read_metrics(f"{out}/{arm}.jsonl") for arm in ("grpo", "relift")}
print("[gpu_smoke] actor peak memory (GiB) after each step; ReLIFT's after its supervised update")
print(f"  {'step':>4} {'grpo':>8} {'relift':>8} {'relift sft':>11} {'sft updates':>12}")
for grpo, relift in zip(arms["grpo"], arms["relift"], strict=True):
    sft = relift.get("relift/sft_max_memory_allocated_gb")
    print(f"  {relift['step']:>4} {grpo['actor/perf/max_memory_allocated_gb']:>8.2f} "
          f"{relift['actor/perf/max_memory_allocated_gb']:>8.2f} {'-' if sft is None else f'{sft:.2f}':>11} "
          f"{int(relift['relift/sft_updates']):>12}")
assert sum(row["relift/sft_updates"] for row in arms["relift"]) >= 1, "no supervised update ran"
EOF
