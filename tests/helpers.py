"""What several test modules share: the repository's path, the composed configuration, the CPU run's overrides
and the chat-completions server on 127.0.0.1 (tests/chat_server.py). Fixtures are in
conftest.py."""

import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "sk-relift-test-0123456789abcdef"


def composed(*overrides: str):
    """relift_trainer.yaml with Hydra overrides, as `python -m relift.main` composes it (no model needed)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="relift.config", version_base=None):
        return compose(config_name="relift_trainer", overrides=["actor_rollout_ref.model.path=unused", *overrides])


# What a normal run's log must not hold: tracebacks, and the warnings relift knows to be harmless on CPU.
NOISE = ["Traceback", "KeyError", "NUMA affinity", "RayPPOTrainer' is deprecated", "'set_vital' is deprecated",
         "engine is not available", "is_fx_tracing", "Failed to load weights"]

# For runs that do not test the rollout: relift's transformers backend starts ~30 s sooner than vLLM's server
# on 2 cores, and samples the same way in every run (the relift-off comparison needs that).
HF_ROLLOUT = "actor_rollout_ref.rollout.name=hf"


def cpu_overrides(tiny, out_dir, steps: int) -> list[str]:
    return [
        "device=cpu",
        f"actor_rollout_ref.model.path={tiny['model']}",
        f"data.train_files={tiny['train']}",
        f"data.val_files={tiny['val']}",
        f"trainer.total_training_steps={steps}",
        "trainer.logger=[file]",
        f"trainer.default_local_dir={out_dir}/checkpoints",
        "data.max_response_length=24",
    ]


class Server:
    def __init__(self, tmp_path, answers: dict, actions: dict | None = None, mode: str = "script", model: str = "",
                 flags: tuple[str, ...] = ()):
        self.log = str(tmp_path / f"server-{time.time_ns()}.jsonl")
        files = []
        for name, content in (("answers", answers), ("actions", actions or {})):
            path = tmp_path / f"{name}-{time.time_ns()}.json"
            path.write_text(json.dumps(content))
            files += [f"--{name}", str(path)]
        command = [sys.executable, os.path.join(REPO, "tests", "chat_server.py"), "--mode", mode, "--log", self.log]
        command += (files if mode == "script" else ["--model", model]) + list(flags)
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        assert line.startswith("port "), line
        self.url = f"http://127.0.0.1:{int(line.split()[1])}/v1"

    def requests(self) -> list[dict]:
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f]

    def stop(self):
        self.process.kill()
        self.process.wait()
