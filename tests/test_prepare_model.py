"""examples/prepare_model.py on copies of the tiny model dressed as the paper's three bases."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import REPO

# Qwen2.5's chat template in short: its generation prompt is the Jinja literal '<|im_start|>assistant\n'.
QWEN_TEMPLATE = (
    r"{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    r"{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def base_like(tiny, root, positions: int) -> str:
    """The tiny model with Qwen2.5's plain template and the given context (4096: Qwen2.5-Math)."""
    base = str(root / f"base-{positions}")
    shutil.copytree(tiny["model"], base)
    with open(os.path.join(base, "chat_template.jinja"), "w") as f:
        f.write(QWEN_TEMPLATE)
    config = json.load(open(os.path.join(base, "config.json")))
    config["max_position_embeddings"] = positions
    json.dump(config, open(os.path.join(base, "config.json"), "w"))
    return base


def prepare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(REPO, "examples", "prepare_model.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_math_base_gets_the_think_template_and_the_16k_context(tiny, tmp_path):
    base, out = base_like(tiny, tmp_path, 4096), str(tmp_path / "math-16k-think")
    result = prepare("--base", base, "--out", out, "--data", tiny["train"])
    assert result.returncode == 0, result.stderr
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["max_position_embeddings"] == 16384 and config["rope_parameters"]["rope_theta"] == 40000.0
    linked = os.path.realpath(os.path.join(out, "model.safetensors"))
    assert linked == os.path.realpath(os.path.join(base, "model.safetensors"))
    assert json.load(open(os.path.join(base, "config.json")))["max_position_embeddings"] == 4096  # base untouched

    import pandas as pd
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    row = list(pd.read_parquet(tiny["train"]).prompt.iloc[0])
    assert tokenizer.apply_chat_template(row, add_generation_prompt=True, tokenize=False).endswith(
        "<|im_start|>assistant\n<think>\n")
    AutoModelForCausalLM.from_pretrained(out)


def test_long_context_base_keeps_its_context(tiny, tmp_path):
    out = str(tmp_path / "7b-think")
    result = prepare("--base", base_like(tiny, tmp_path, 131072), "--out", out)
    assert result.returncode == 0, result.stderr
    assert json.load(open(os.path.join(out, "config.json")))["max_position_embeddings"] == 131072


def test_unknown_base_is_refused_unless_the_edits_are_given(tiny, tmp_path):
    base = base_like(tiny, tmp_path, 2048)
    result = prepare("--base", base, "--out", str(tmp_path / "a"))
    assert result.returncode != 0 and "is not Qwen2.5-7B, Qwen2.5-Math-1.5B or Qwen2.5-Math-7B" in result.stderr
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob("a.tmp-*"))
    result = prepare("--base", base, "--out", str(tmp_path / "b"), "--context", "8192", "--rope-theta", "20000")
    assert result.returncode == 0, result.stderr
    assert json.load(open(tmp_path / "b" / "config.json"))["max_position_embeddings"] == 8192


@pytest.mark.parametrize("problem", ["out exists", "no template literal"])
def test_bad_input_is_refused_with_its_reason(tiny, tmp_path, problem):
    base = base_like(tiny, tmp_path, 4096)
    if problem == "out exists":
        (tmp_path / "out").mkdir()
        expected = "exists: give a new folder"
    else:
        with open(os.path.join(base, "chat_template.jinja"), "w") as f:
            f.write("{% for m in messages %}{{ m['content'] }}{% endfor %}")
        expected = "the chat template's generation prompt is not Qwen2.5's"
    result = prepare("--base", base, "--out", str(tmp_path / "out"))
    assert result.returncode != 0 and expected in result.stderr
