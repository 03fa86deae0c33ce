"""relift.loggers: every backend of trainer.logger can start, checked before Ray (veRL starts them after
the workers are up). W&B is asked in a fresh process each time: it caches its settings per process."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from relift.loggers import logger_problems

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "k" * 40  # the shape of a W&B key; never sent anywhere: nothing here makes a request


def test_the_backends_that_need_no_account_pass():
    assert logger_problems(["console", "tensorboard", "file"]) == []
    assert logger_problems("console") == []


def test_an_unknown_backend_is_refused_with_the_known_ones():
    [problem] = logger_problems(["console", "neptune"])
    assert problem.startswith("trainer.logger has neptune, which veRL does not know: use some of wandb,mlflow,")


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed here")
def test_a_backend_that_is_not_installed_is_refused_with_the_package():
    [problem] = logger_problems(["console", "mlflow"])
    assert problem.startswith("trainer.logger has mlflow, but `import mlflow` fails (No module named 'mlflow'): ")
    assert problem.endswith("pip install mlflow, or remove mlflow from trainer.logger")


def bare_env(home, **env: str) -> dict:
    """No W&B credentials or settings: HOME an empty folder, no WANDB_* or NETRC variable."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_") and key != "NETRC"}
    return {**clean, "HOME": str(home), "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), **env}


@pytest.mark.parametrize(
    ("setup", "env", "expected"),
    [
        (None, {}, "trainer.logger has wandb, but W&B has no API key for "),
        (None, {"WANDB_MODE": "offline"}, None),
        (None, {"WANDB_MODE": "disabled"}, None),
        (None, {"WANDB_API_KEY": KEY}, None),
        # what `wandb login` writes; wandb 0.31 serves api.wandb.ai's keys to its default host
        ("machine api.wandb.ai\n  login user\n  password " + KEY + "\n", {}, None),
        (None, {"WANDB_API_KEY": "short"}, "trainer.logger has wandb, but W&B refuses its credentials: WANDB_API_KEY "
                                           "invalid: API key must have 40+ characters, has 5."),
        (None, {"WANDB_MODE": "off"}, "trainer.logger has wandb, but W&B's settings do not load: "),
    ],
    ids=["no-key", "offline", "disabled", "env-key", "netrc", "malformed-key", "bad-mode"],
)
def test_wandb_needs_a_key_a_login_or_an_offline_mode(tmp_path, setup, env, expected):
    if setup is not None:
        (tmp_path / ".netrc").write_text(setup)
        os.chmod(tmp_path / ".netrc", 0o600)
    check = "import json; from relift.loggers import logger_problems; print(json.dumps(logger_problems(['wandb'])))"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env=bare_env(tmp_path, **env))
    assert result.returncode == 0, result.stderr
    problems = json.loads(result.stdout.strip().splitlines()[-1])
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith(expected), problems


@pytest.fixture(scope="module")
def data(tiny):
    return [f"actor_rollout_ref.model.path={tiny['model']}", f"data.train_files={tiny['train']}",
            f"data.val_files={tiny['val']}", "trainer.total_training_steps=2"]


def test_a_run_with_wandb_and_no_key_is_refused_before_ray_in_one_line(data, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    command = [sys.executable, "-m", "relift.main", "device=cpu", *data, "trainer.logger=[console,wandb]",
               f"trainer.default_local_dir={tmp_path}/run"]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                             env=bare_env(home))
    assert refused.returncode != 0
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("[relift] trainer.logger has wandb, but W&B has no API key for "), refused.stderr[-2000:]
    assert "export WANDB_API_KEY=..., run `wandb login`, set WANDB_MODE=offline" in line
    assert "Ray" not in refused.stdout + refused.stderr and not os.path.exists(f"{tmp_path}/run")

    offline = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                             env=bare_env(home, WANDB_MODE="offline", DRY_RUN="1"))
    assert offline.returncode == 0, offline.stderr[-2000:]
    assert "[relift] dry run: configuration and data valid; nothing started" in offline.stdout
