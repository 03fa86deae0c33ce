#!/usr/bin/env bash
# The paper's SFT-only baseline on Qwen2.5-Math-7B: veRL's own SFT trainer (through relift.sft_baseline)
# on the demonstrations of the same prepared file ReLIFT trains on, 3 epochs, on NNODES x GPUS_PER_NODE GPUs.
#   MODEL_ROOT=/models bash examples/qwen2.5-math-7b-sft-baseline.sh [veRL sft_trainer_engine overrides...]
#   DRY_RUN=1 ...   checks the configuration, the model folder and every row's length; starts nothing.
# Settings: the paper gives 3 epochs and no more. Batch 64, lr 5e-5 with cosine decay after 10% linear
# warm-up and 16,384 tokens per sequence are the closest published ones: LUFFY's SFT command for the same
# OpenR1 data and -think model (ElliottYan/LUFFY README, OpenRLHF). The final model is OUT/final.
# Rerunning the same command resumes from the latest (end-of-epoch) checkpoint and trains the epochs left.
[ -n "${BASH_VERSION:-}" ] || { echo "[relift] run it with bash: bash $0" >&2; return 2 2>/dev/null || exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@" || return 2
set -euo pipefail
MODEL=$(default_model Qwen2.5-Math-7B-16k-think) || exit 2
TRAIN_FILES=${TRAIN_FILES:-dataset/openr1.parquet}
OUT=${OUT:-train_results/SFT/math_7b_sft}
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
cd "$(dirname "$0")/.."

args=(
    --train "$TRAIN_FILES" --model "$MODEL" --out "$OUT"
    --epochs 3 --batch-size 64 --lr 5e-5 --lr-scheduler cosine --warmup-ratio 0.1
    --max-length 16384 --save-freq after_each_epoch
    data.max_token_len_per_gpu=16384
    data.micro_batch_size_per_gpu=1
    trainer.max_ckpt_to_keep=1
    "$@"
)
if dry_run; then
    exec python3 -m relift.sft_baseline --dry-run --world-size $((NNODES * GPUS_PER_NODE)) "${args[@]}"
fi
exec torchrun --nnodes "$NNODES" --node-rank "${NODE_RANK:-0}" --nproc-per-node "$GPUS_PER_NODE" \
    --master-addr "${MASTER_ADDR:-127.0.0.1}" --master-port "${MASTER_PORT:-29500}" \
    -m relift.sft_baseline "${args[@]}"
