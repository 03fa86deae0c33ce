#!/usr/bin/env bash
# ReLIFT on Qwen2.5-Math-7B over 2 nodes x 8 GPUs. First bring the Ray cluster up:
#   head:    bash examples/ray_start_head.sh        workers: HEAD_ADDR=<head ip> bash examples/ray_join.sh
# then run this script on the head node.
MODEL=${MODEL:-$MODEL_ROOT/Qwen2.5-Math-7B-16k-think} EXP=${EXP:-math_7b_relift_2nodes} NNODES=2 \
    exec bash "$(dirname "$0")/run_relift.sh" "$@"
