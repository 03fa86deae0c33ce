#!/usr/bin/env bash
# ReLIFT on Qwen2.5-7B (base, "-think" chat template), one node of 8 GPUs.
MODEL=${MODEL:-$MODEL_ROOT/Qwen2.5-7B-think} EXP=${EXP:-7b_relift} \
    exec bash "$(dirname "$0")/run_relift.sh" "$@"
