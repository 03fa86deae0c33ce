# What every script of examples/ and eval_scripts/ sources first, right after the line that refuses `sh`:
#   source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@" || return 2
# It refuses `source script.sh` (the script's `exec` or `exit` would end the user's shell), answers -h and
# --help with the script's header comment, and defines the helpers below.

if [ "${BASH_SOURCE[1]}" != "$0" ]; then
    echo "[relift] run it with bash, not source: bash ${BASH_SOURCE[1]}" >&2
    return 2
fi
case "${1:-}" in
    -h | --help)
        sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"
        exit 0
        ;;
esac

# The model folder: $MODEL, else <root>/$1 with the root $MODEL_ROOT (or $MODEL_ROOT_PATH, the reference
# repository's name for it).
default_model() {
    local root=${MODEL_ROOT:-${MODEL_ROOT_PATH:-}}
    if [ -n "${MODEL:-}" ]; then
        echo "$MODEL"
    elif [ -n "$root" ]; then
        echo "$root/$1"
    else
        echo "[relift] set MODEL to the model's folder, or MODEL_ROOT to the folder that holds $1" >&2
        return 2
    fi
}

# DRY_RUN=1 checks everything and starts nothing; unset, empty or 0 runs; any other value is refused (relift.main
# reads it with the same rule).
dry_run() {
    case "${DRY_RUN:-}" in
        1) return 0 ;;
        "" | 0) return 1 ;;
        *)
            echo "[relift] DRY_RUN=$DRY_RUN: set DRY_RUN=1 to check without starting anything, or unset it to run" >&2
            exit 2
            ;;
    esac
}
