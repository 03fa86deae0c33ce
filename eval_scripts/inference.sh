#!/usr/bin/env bash
# Evaluate one or more checkpoints on the bundled benchmarks and print one table per model.
#   bash eval_scripts/inference.sh /ckpts/relift-math-7b /ckpts/rl-math-7b
#   NAMES="relift rl" N=1 MAX_NEW_TOKENS=8192 bash eval_scripts/inference.sh /ckpts/a /ckpts/b
# Models are separate arguments (paths may contain commas); NAMES pairs with them in order.
# Results: results/<name>/{samples.jsonl, summary.json, table.md}; reruns resume.
[ -n "${BASH_VERSION:-}" ] || { echo "[relift] run it with bash: bash $0" >&2; return 2 2>/dev/null || exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/../examples/common.sh" "$@" || return 2
set -euo pipefail
if [ $# -eq 0 ]; then
    echo "usage: bash eval_scripts/inference.sh MODEL [MODEL ...]" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
name_args=()
if [ -n "${NAMES:-}" ]; then
    read -r -a names <<< "$NAMES"
    name_args=(--name "${names[@]}")
fi
python3 -m relift.eval run "$@" "${name_args[@]}" \
    --n "${N:-1}" \
    --temperature "${TEMPERATURE:-0.6}" \
    --top-p "${TOP_P:-1.0}" \
    --max-new-tokens "${MAX_NEW_TOKENS:-8192}" \
    --template "${TEMPLATE:-train}" \
    --backend "${BACKEND:-auto}" \
    --out "${OUT:-results}"
python3 -m relift.eval compare "${OUT:-results}"/*
