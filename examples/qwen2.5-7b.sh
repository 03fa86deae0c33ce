#!/usr/bin/env bash
# ReLIFT on Qwen2.5-7B (base, "-think" chat template), one node of 8 GPUs.
# The paper's interleaving (INTERLEAVE=paper); INTERLEAVE= (empty) trains with relift's stabilizers instead.
MODEL=${MODEL:-$MODEL_ROOT/Qwen2.5-7B-think} EXP=${EXP:-7b_relift} \
    INTERLEAVE=${INTERLEAVE-paper} exec bash "$(dirname "$0")/run_relift.sh" "$@"
