"""relift.loggers: every backend of trainer.logger can start, checked before Ray (veRL starts them after
the workers are up). W&B is asked in a fresh process, its per-process state torn down between cases."""

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


# (~/.netrc, environment, the problem's start or None), by case; the case without a key comes last, after
# cases that had one, so that anything W&B kept between cases would show.
WANDB_CASES = {
    "offline": (None, {"WANDB_MODE": "offline"}, None),
    "disabled": (None, {"WANDB_MODE": "disabled"}, None),
    "env-key": (None, {"WANDB_API_KEY": KEY}, None),
    # what `wandb login` writes; wandb 0.31 serves api.wandb.ai's keys to its default host
    "netrc": ("machine api.wandb.ai\n  login user\n  password " + KEY + "\n", {}, None),
    "malformed-key": (None, {"WANDB_API_KEY": "short"}, "trainer.logger has wandb, but W&B refuses its credentials: "
                      "WANDB_API_KEY invalid: API key must have 40+ characters, has 5."),
    "bad-mode": (None, {"WANDB_MODE": "off"}, "trainer.logger has wandb, but W&B's settings do not load: "),
    "no-key": (None, {}, "trainer.logger has wandb, but W&B has no API key for "),
}

# Each case in the same fresh process, its home and environment set, W&B's per-process state torn down after.
CHECK = """
import json, os, sys
from wandb.sdk import wandb_setup
from relift.loggers import logger_problems
cases, bare = json.load(open(sys.argv[1])), dict(os.environ)
results = {}
for name, (home, env) in cases.items():
    os.environ.clear()
    os.environ.update({**bare, "HOME": home, **env})
    results[name] = logger_problems(["wandb"])
    wandb_setup.teardown()
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def wandb_answers(tmp_path_factory):
    root = tmp_path_factory.mktemp("wandb")
    cases = {}
    for name, (netrc, env, _) in WANDB_CASES.items():
        home = root / name
        home.mkdir()
        if netrc is not None:
            (home / ".netrc").write_text(netrc)
            os.chmod(home / ".netrc", 0o600)
        cases[name] = (str(home), env)
    (root / "cases.json").write_text(json.dumps(cases))
    result = subprocess.run([sys.executable, "-c", CHECK, str(root / "cases.json")], capture_output=True, text=True,
                            timeout=300, cwd=root, env=bare_env(root))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", WANDB_CASES)
def test_wandb_needs_a_key_a_login_or_an_offline_mode(wandb_answers, case):
    expected, problems = WANDB_CASES[case][2], wandb_answers[case]
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
