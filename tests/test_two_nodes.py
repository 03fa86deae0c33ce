"""Two Ray nodes on one machine: a head on 127.0.0.2 and a node on 127.0.0.3, brought up by
examples/ray_start_head.sh and examples/ray_join.sh with their token authentication, then two ReLIFT
steps through the two-node example's own script with device=cpu, one training process and one rollout
replica per node.
Each node is stopped by its script's pid, and nothing of either is left running."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
from helpers import HF_ROLLOUT, NOISE, REPO

from relift.toy.runs import read_metrics

pytestmark = pytest.mark.e2e

HEAD, NODE = "127.0.0.2", "127.0.0.3"

# The nodes that ran veRL's training processes (WorkerDict) and relift's hf rollout servers, from Ray's actor table.
WORKER_NODES = """
import collections, json, ray
ray.init(logging_level="ERROR")
from ray._private.state import actors
print(json.dumps({kind: collections.Counter(a["Address"]["IPAddress"] for a in actors().values()
                                            if a["ActorClassName"].endswith(kind))
                  for kind in ("WorkerDict", "HFRolloutServer")}))
"""


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def start_node(script: str, log_path: str, env: dict, *options: str) -> subprocess.Popen:
    log = open(log_path, "w")
    process = subprocess.Popen(["bash", os.path.join(REPO, "examples", script), *options],
                               stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.time() + 120
    while "Ray runtime started" not in open(log_path).read():
        assert process.poll() is None and time.time() < deadline, open(log_path).read()[-3000:]
        time.sleep(0.5)
    return process


def stop_node(process: subprocess.Popen) -> list[psutil.Process]:
    """SIGTERM to the script's pid only; returns the node's processes that outlived it."""
    spawned = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    _, alive = psutil.wait_procs(spawned, timeout=30)
    return alive


def test_two_nodes_on_loopback_train_two_steps(tiny, tmp_path):
    token = tmp_path / "auth_token"  # the head creates it; not the user's ~/.ray/auth_token
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
           "RAY_AUTH_TOKEN_PATH": str(token), "RAY_PORT": str(free_port(HEAD)), "GPUS_PER_NODE": "1",
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    nodes = []
    try:
        nodes.append(start_node("ray_start_head.sh", str(tmp_path / "head.log"), {**env, "NODE_ADDR": HEAD},
                                "--include-dashboard=false"))
        assert token.read_text() and oct(token.stat().st_mode & 0o777) == "0o600"
        nodes.append(start_node("ray_join.sh", str(tmp_path / "node.log"),
                                {**env, "NODE_ADDR": NODE, "HEAD_ADDR": HEAD}))

        driver = {**env, "RAY_ADDRESS": f"{HEAD}:{env['RAY_PORT']}", "MODEL": tiny["model"],
                  "TRAIN_FILES": tiny["train"], "VAL_FILES": tiny["val"]}
        with open(tmp_path / "train.log", "w") as log:
            result = subprocess.run(
                ["bash", os.path.join(REPO, "examples", "qwen2.5-math-7b-two-nodes.sh"), "device=cpu",
                 "trainer.total_training_steps=2", "trainer.logger=[file]",
                 # the driver's environment does not reach the nodes' workers; the runtime env does
                 f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH={tmp_path}/metrics.jsonl",
                 f"trainer.default_local_dir={tmp_path}/checkpoints", "trainer.save_freq=-1", "trainer.test_freq=-1",
                 "data.max_response_length=24", "relift.max_target_len=8",
                 # 8 prompts x 4 responses over 2 ranks: 16 per rank
                 "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
                 "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
                 "relift.sft_trigger_size=4", "relift.sft_micro_batch_size_per_gpu=2",
                 HF_ROLLOUT,  # two vLLM servers would start on the 2 cores; test_e2e_cpu.py runs vLLM
                 f"hydra.run.dir={tmp_path}/hydra"],  # the script works from the repository's root
                stdout=log, stderr=subprocess.STDOUT, env=driver, timeout=600)
        text = open(tmp_path / "train.log").read()
        assert result.returncode == 0, text[-4000:]
        rows = read_metrics(str(tmp_path / "metrics.jsonl"))
        assert [r["step"] for r in rows] == [1, 2]
        assert rows[-1]["relift/sft_updates_total"] >= 1
        # Rollouts from the actor's weights of each step.
        assert all(r["training/rollout_probs_diff_mean"] < 1e-4 for r in rows)
        # The closing block comes from the driver, not from Ray's log streaming, which may drop it.
        assert "\n[relift] compute for this run (relift, 2 steps)\n  wall time" in text
        for noise in NOISE:
            assert noise not in text, noise

        # One training process (veRL's WorkerDict) per node, and a rollout replica per training process (the hf
        # replica's server goes where Ray has room; vLLM's follows its workers' node).
        placed = subprocess.run([sys.executable, "-c", WORKER_NODES], env={**driver, "RAY_AUTH_MODE": "token"},
                                capture_output=True, text=True, timeout=120)
        assert placed.returncode == 0, placed.stderr[-3000:]
        placed = json.loads(placed.stdout.strip().splitlines()[-1])
        assert placed["WorkerDict"] == {HEAD: 1, NODE: 1} and sum(placed["HFRolloutServer"].values()) == 2, placed
    finally:
        leftovers = [stop_node(process) for process in reversed(nodes)]
    assert leftovers == [[], []], leftovers
    assert [process.returncode for process in nodes] == [0, 0]
    # `ray start` recorded the cluster for later ray.init() calls on this machine; stopping removed it.
    record = os.path.join(os.environ.get("RAY_TMPDIR", "/tmp"), "ray", "ray_current_cluster")
    assert not os.path.exists(record) or open(record).read() != f"{HEAD}:{env['RAY_PORT']}"
