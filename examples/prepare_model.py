"""Make the "-think" variant of a base model that the paper trains, from a local Hugging Face checkpoint.

    python examples/prepare_model.py --base /models/Qwen2.5-Math-7B --out /models/Qwen2.5-Math-7B-16k-think

- The chat template's generation prompt opens the think block: `<|im_start|>assistant\\n<think>\\n`, so
  that training and evaluation prompts render as the paper's (the demonstrations and responses continue
  inside `<think>`; the reward needs the `</think>` that closes it).
- Qwen2.5-Math (1.5B, 7B) ships 4,096 positions with rope_theta 10,000: the "16k" variant takes 16,384
  positions and rope_theta 40,000 (the reference maintainer's edit, LUFFY issue #9), so that 1,024 prompt +
  8,192 response tokens fit. Qwen2.5-7B (131,072 positions) keeps its context.
- The weights are symbolic links to the base's files (`--copy` copies them); never rewritten.
- A base it does not recognise is refused, unless the edits are given: `--context N --rope-theta T`, or
  `--template-only`.

The result is checked before it is moved into place: the tokenizer and config load with transformers, the
weight files hold exactly the tensors the architecture expects (built on the meta device, nothing
loaded), and one training row renders with the think block open.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from relift.cli import HelpFormatter

THINK_PROMPT = "<|im_start|>assistant\n<think>\n"
# Qwen2.5's template writes its generation prompt as this Jinja string literal.
QWEN_GENERATION_PROMPT = "'<|im_start|>assistant\\n'"
THINK_GENERATION_PROMPT = "'<|im_start|>assistant\\n<think>\\n'"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json")
PAPER_CONTEXT, PAPER_ROPE_THETA = 16384, 40000.0
SAMPLE_ROW = [
    {"role": "system", "content": "Your task is to follow a systematic, thorough reasoning process."},
    {"role": "user", "content": "What is $1+1$?"},
]


def rope_theta(config: dict) -> float | None:
    """transformers >= 5 writes rope_parameters.rope_theta, earlier versions a top-level rope_theta."""
    return config.get("rope_parameters", {}).get("rope_theta", config.get("rope_theta"))


def context_edit(config: dict, args: argparse.Namespace) -> tuple[int, float] | None:
    """(max_position_embeddings, rope_theta) to write, or None to keep the context. Exits on an unknown base."""
    if args.template_only:
        return None
    if args.context is not None and args.rope_theta is not None:
        return args.context, args.rope_theta
    positions, theta = config.get("max_position_embeddings"), rope_theta(config)
    if config.get("model_type") == "qwen2" and positions == 4096 and theta == 10000.0:  # Qwen2.5-Math-1.5B / 7B
        return args.context or PAPER_CONTEXT, args.rope_theta or PAPER_ROPE_THETA
    if config.get("model_type") == "qwen2" and positions >= 32768:  # Qwen2.5-7B: long enough already
        return None
    sys.exit(
        f"[prepare_model] {args.base}/config.json: model_type={config.get('model_type')}, "
        f"max_position_embeddings={positions}, rope_theta={theta} is not Qwen2.5-7B, Qwen2.5-Math-1.5B or "
        "Qwen2.5-Math-7B: give the edits (--context 16384 --rope-theta 40000) or --template-only"
    )


def think_template(template: str, where: str) -> str:
    if THINK_GENERATION_PROMPT in template or THINK_PROMPT in template:
        return template  # already a -think template
    if template.count(QWEN_GENERATION_PROMPT) != 1:
        sys.exit(f"[prepare_model] {where}: the chat template's generation prompt is not Qwen2.5's "
                 f"{QWEN_GENERATION_PROMPT}; edit it by hand so that it ends with {THINK_PROMPT!r}")
    return template.replace(QWEN_GENERATION_PROMPT, THINK_GENERATION_PROMPT)


def write_json(path: str, value: dict) -> None:
    with open(path, "w") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def stage(args: argparse.Namespace, staging: str) -> None:
    config = json.load(open(os.path.join(args.base, "config.json")))
    edit = context_edit(config, args)
    os.makedirs(staging)
    for name in sorted(os.listdir(args.base)):
        source = os.path.abspath(os.path.join(args.base, name))
        if not os.path.isfile(source):
            continue
        target = os.path.join(staging, name)
        if name.endswith(WEIGHT_SUFFIXES) and not args.copy:
            os.symlink(source, target)
        else:
            shutil.copy2(source, target)
    if edit is not None:
        config["max_position_embeddings"] = edit[0]
        if "rope_parameters" in config:
            config["rope_parameters"]["rope_theta"] = edit[1]
        else:
            config["rope_theta"] = edit[1]
        write_json(os.path.join(staging, "config.json"), config)
    jinja = os.path.join(staging, "chat_template.jinja")
    tokenizer_config_path = os.path.join(staging, "tokenizer_config.json")
    tokenizer_config = json.load(open(tokenizer_config_path))
    if os.path.exists(jinja):
        text = open(jinja).read()
        with open(jinja, "w") as f:
            f.write(think_template(text, jinja))
    elif isinstance(tokenizer_config.get("chat_template"), str):
        tokenizer_config["chat_template"] = think_template(tokenizer_config["chat_template"], tokenizer_config_path)
        write_json(tokenizer_config_path, tokenizer_config)
    else:
        sys.exit(f"[prepare_model] {args.base}: no chat template (tokenizer_config.json or chat_template.jinja)")


def check(folder: str, data: str | None) -> str:
    """Load what can be loaded without the weights and render one training row; returns the rendering."""
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.device("meta"):
        expected = set(AutoModelForCausalLM.from_config(config).state_dict())
    found = set()
    for name in os.listdir(folder):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(folder, name), "pt") as f:
                found.update(f.keys())
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if found and (found - expected or expected - found - tied):
        sys.exit(f"[prepare_model] {folder}: the weights do not match the architecture: unexpected "
                 f"{sorted(found - expected)[:5]}, missing {sorted(expected - found - tied)[:5]}")
    row = SAMPLE_ROW
    if data is not None:
        import pandas as pd

        row = list(pd.read_parquet(data).prompt.iloc[0])
    rendered = tokenizer.apply_chat_template(row, add_generation_prompt=True, tokenize=False)
    if not rendered.endswith(THINK_PROMPT):
        sys.exit(f"[prepare_model] {folder}: a training row renders ending with {rendered[-40:]!r}, "
                 f"not {THINK_PROMPT!r}")
    return rendered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--base", required=True, help="local Hugging Face checkpoint")
    parser.add_argument("--out", required=True, help="new folder (must not exist)")
    parser.add_argument("--context", type=int, help=f"max_position_embeddings (Qwen2.5-Math default {PAPER_CONTEXT})")
    parser.add_argument("--rope-theta", type=float, help=f"rope_theta (Qwen2.5-Math default {PAPER_ROPE_THETA:g})")
    parser.add_argument("--template-only", action="store_true", help="change only the chat template")
    parser.add_argument("--copy", action="store_true", help="copy the weights instead of linking them")
    parser.add_argument("--data", help="a prepared training parquet whose first row is rendered as the check")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.base, "config.json")):
        sys.exit(f"[prepare_model] --base {args.base}: no Hugging Face model there (no config.json)")
    if os.path.exists(args.out):
        sys.exit(f"[prepare_model] --out {args.out} exists: give a new folder")
    staging = f"{args.out.rstrip('/')}.tmp-{os.getpid()}"
    try:
        stage(args, staging)
        rendered = check(staging, args.data)
        os.rename(staging, args.out)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    config = json.load(open(os.path.join(args.out, "config.json")))
    print(f"[prepare_model] wrote {args.out}: max_position_embeddings {config['max_position_embeddings']}, "
          f"rope_theta {rope_theta(config):g}, weights {'copied' if args.copy else 'linked'}; a training row "
          f"renders ending with {rendered[-40:]!r}")


if __name__ == "__main__":
    main()
