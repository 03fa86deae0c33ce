#!/usr/bin/env bash
# ReLIFT on Qwen2.5-Math-1.5B (16k-context "-think" variant), one node of 8 GPUs.
MODEL=${MODEL:-$MODEL_ROOT/Qwen2.5-Math-1.5B-16k-think} EXP=${EXP:-math_1.5b_relift} \
    exec bash "$(dirname "$0")/run_relift.sh" "$@"
