#!/usr/bin/env bash
# ReLIFT on Qwen2.5-Math-1.5B (16k-context "-think" variant), one node of 8 GPUs.
# The paper's interleaving (INTERLEAVE=paper); INTERLEAVE= (empty) trains with relift's stabilizers instead.
MODEL=${MODEL:-$MODEL_ROOT/Qwen2.5-Math-1.5B-16k-think} EXP=${EXP:-math_1.5b_relift} \
    INTERLEAVE=${INTERLEAVE-paper} exec bash "$(dirname "$0")/run_relift.sh" "$@"
