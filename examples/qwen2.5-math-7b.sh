#!/usr/bin/env bash
# ReLIFT on Qwen2.5-Math-7B (16k-context "-think" variant), one node of 8 GPUs. (Paper: SFT micro-batch 4.)
MODEL=${MODEL:-$MODEL_ROOT/Qwen2.5-Math-7B-16k-think} EXP=${EXP:-math_7b_relift} SFT_MICRO=4 \
    exec bash "$(dirname "$0")/run_relift.sh" "$@"
