"""Two Ray nodes on one machine: a head on 127.0.0.2 and a node on 127.0.0.3, brought up by
examples/ray_start_head.sh and examples/ray_join.sh with their token authentication, then two ReLIFT
steps through the two-node example's own script with device=cpu and the GPU defaults, one training process
and one rollout replica per node. Its first supervised update is the one computed by hand in plain torch.
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
import torch
from helpers import HF_ROLLOUT, NOISE, REPO
from omegaconf import OmegaConf
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from relift.checkpoints import parameter_count
from relift.checks import supervised_settings
from relift.sft import build_sft_batch, sft_loss
from relift.sft_plan import plan_update
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


# The GPU defaults over the 2 ranks: micro-batches cut by tokens, packed sequences without padding (sdpa masks
# them by position ids on CPU), the loss a token mean over both ranks (the reference scaled it by
# 1/world_size). A sequence here is ~60 prompt + 24 response tokens: 2 per micro-batch.
GPU_DEFAULTS = [
    "actor_rollout_ref.actor.use_dynamic_bsz=true",
    "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=192",
    "relift.sft_micro_batch_size_per_gpu=null",
    "actor_rollout_ref.model.use_remove_padding=true",
]

# The random model answers every question wrongly, so RL has zero advantage everywhere; with the entropy
# bonuses and weight decay off, step 1's only weight change is one supervised update on all 8 questions of
# its batch (every demonstration fits in 40 tokens).
ONLY_SUPERVISED = [
    "relift.sft_trigger_size=8",
    "relift.max_target_len=40",
    "actor_rollout_ref.actor.entropy_coeff=0",
    "actor_rollout_ref.actor.optim.weight_decay=0",
    "relift.entropy_coeff=0",
    "trainer.save_freq=1",
    "actor_rollout_ref.actor.checkpoint.save_contents=[model,extra,hf_model]",
]


def weights(path: str) -> dict[str, torch.Tensor]:
    return load_file(os.path.join(path, "model.safetensors"))


def supervised_step_by_hand(model_path: str, batch: list, config) -> tuple[float, dict[str, torch.Tensor]]:
    """The first supervised update as documented, in plain transformers and torch: relift.sft's layout and
    token-mean NLL over the whole batch, the gradient clipped to relift.optim.grad_clip, one AdamW step at
    the plan's first lr (relift.sft_plan). Returns (NLL, weights)."""
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, attn_implementation="sdpa")
    tensors = build_sft_batch([p for p, _ in batch], [r for _, r in batch], eos_token_id=model.config.eos_token_id,
                              pad_token_id=model.config.pad_token_id,
                              max_target_len=config.relift.max_target_len).tensors
    logits = model(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"],
                   position_ids=tensors["position_ids"]).logits
    prompt_length = tensors["prompts"].shape[1]
    log_probs = logits[:, prompt_length - 1 : -1].log_softmax(-1)
    log_probs = log_probs.gather(-1, tensors["responses"][..., None]).squeeze(-1)
    mask = tensors["response_mask"]
    loss, nll = sft_loss(log_probs, None, mask, global_num_tokens=float(mask.sum()), dp_size=1, entropy_coeff=0.0,
                         weighting=config.relift.sft_loss.weighting)
    loss.backward()
    optim = config.relift.optim
    torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
    lr = plan_update(supervised_settings(config), 0, 0, 0).lr
    torch.optim.AdamW(model.parameters(), lr=lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay).step()
    return float(nll), {name: value.detach() for name, value in model.state_dict().items()}


def test_two_nodes_on_loopback_train_and_their_first_supervised_update_is_the_documented_one(tiny, tmp_path):
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

        # INTERLEAVE= : relift's interleaving (the example's default is the paper's), whose taught pool keeps
        # the demonstrations of each update: the batch computed by hand below.
        driver = {**env, "RAY_ADDRESS": f"{HEAD}:{env['RAY_PORT']}", "MODEL": tiny["model"],
                  "TRAIN_FILES": tiny["train"], "VAL_FILES": tiny["val"], "INTERLEAVE": ""}
        with open(tmp_path / "train.log", "w") as log:
            result = subprocess.run(
                ["bash", os.path.join(REPO, "examples", "qwen2.5-math-7b-two-nodes.sh"), "device=cpu",
                 "trainer.total_training_steps=2", "trainer.logger=[file]",
                 # the driver's environment does not reach the nodes' workers; the runtime env does
                 f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH={tmp_path}/metrics.jsonl",
                 f"trainer.default_local_dir={tmp_path}/checkpoints", "trainer.test_freq=-1",
                 "data.max_response_length=24", *GPU_DEFAULTS, *ONLY_SUPERVISED,
                 # 8 prompts x 4 responses over 2 ranks: 16 per rank
                 "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
                 "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
                 HF_ROLLOUT,  # two vLLM servers would start on the 2 cores; test_e2e_cpu.py runs vLLM
                 f"hydra.run.dir={tmp_path}/hydra"],  # the script works from the repository's root
                stdout=log, stderr=subprocess.STDOUT, env=driver, timeout=600)
        text = open(tmp_path / "train.log").read()
        assert result.returncode == 0, text[-4000:]
        rows = read_metrics(str(tmp_path / "metrics.jsonl"))
        assert [r["step"] for r in rows] == [1, 2]
        assert [r["relift/sft_updates"] for r in rows] == [1, 1]
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

    # The compute summary: 2 RL optimizer steps (one mini-batch a step), every sampled sequence prefilled,
    # scored and trained once, two supervised updates, N from the model's config.
    summary = json.load(open(tmp_path / "checkpoints" / "summary.json"))
    assert (summary["rl_updates"], summary["sft_updates"]) == (2, 2)
    assert summary["parameters"] == parameter_count(tiny["model"])
    assert summary["tokens_scored"] == summary["tokens_prefilled"] + summary["tokens_generated"]
    assert summary["tokens_in_rl_updates"] == summary["tokens_scored"]
    assert summary["tokens_in_sft_updates"] > summary["sft_tokens_trained"] > 0
    assert summary["flops"] == pytest.approx(summary["parameters"] * (
        2 * (summary["tokens_generated"] + summary["tokens_prefilled"] + summary["tokens_scored"])
        + 6 * (summary["tokens_in_rl_updates"] + summary["tokens_in_sft_updates"])))

    # Step 1's supervised update, as the run used its configuration, computed by hand: same NLL and weights,
    # and every weight but the norms' moved.
    first = rows[0]
    assert first["relift/sft_replayed_own"] == first["relift/sft_replayed_taught"] == 0
    assert first["critic/score/mean"] == 0.0 and first["actor/pg_loss"] == 0.0  # RL had nothing to learn from
    config = OmegaConf.load(tmp_path / "hydra" / ".hydra" / "config.yaml")
    state = json.load(open(tmp_path / "checkpoints" / "global_step_1" / "relift_state.json"))
    batch = [(item["prompt_ids"], item["response_ids"]) for item in state["taught"]["items"]]
    assert len(batch) == 8
    nll, expected = supervised_step_by_hand(tiny["model"], batch, config)
    assert first["relift/sft_nll"] == pytest.approx(nll, rel=1e-3)
    initial = weights(tiny["model"])
    for name, value in weights(str(tmp_path / "checkpoints" / "global_step_1" / "actor" / "huggingface")).items():
        assert not torch.equal(value, initial[name]) or name.endswith("norm.weight")
        assert torch.allclose(value, expected[name], rtol=1e-4, atol=1e-6), name
