#!/usr/bin/env bash
# ReLIFT on Qwen2.5-Math-1.5B (16k-context "-think" variant), one node of 8 GPUs.
# The paper's interleaving (INTERLEAVE=paper); INTERLEAVE= (empty) trains with relift's stabilizers instead.
[ -n "${BASH_VERSION:-}" ] || { echo "[relift] run it with bash: bash $0" >&2; return 2 2>/dev/null || exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@" || return 2
MODEL=$(default_model Qwen2.5-Math-1.5B-16k-think) || exit 2
export MODEL EXP=${EXP:-math_1.5b_relift} INTERLEAVE=${INTERLEAVE-paper}
exec bash "$(dirname "$0")/run_relift.sh" "$@"
