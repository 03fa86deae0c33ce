"""Every command a user types: `--help` exits 0 with its usage; the shell scripts refuse `sh` and `source`
in one line, read DRY_RUN and the model folder the same way (examples/common.sh)."""

import glob
import os
import subprocess
import sys

import pytest
from helpers import REPO, composed

SCRIPTS = sorted(p for p in glob.glob(os.path.join(REPO, "examples", "*.sh")) + [
    os.path.join(REPO, "eval_scripts", "inference.sh")] if not p.endswith("common.sh"))
# bench/'s commands run as modules (`python -m bench.toy_repro`, as bench/README.md writes them); its other
# files are their code.
BENCH = sorted(f"bench.{os.path.basename(p)[:-3]}" for p in glob.glob(os.path.join(REPO, "bench", "*.py"))
               if 'if __name__ == "__main__":' in open(p).read())
MODULES = ["relift.main", "relift.eval", "relift.sft_baseline", "relift.accounting", "relift.demo",
           "relift.toy.digit_tasks", "relift.toy.tiny_model", *BENCH]
FILES = ["dataset/prepare_train.py", "examples/prepare_model.py", "examples/inference.py"]


def without(*names: str) -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in names}


def test_every_command_is_covered():
    mains = {os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "**", "*.py"), recursive=True)
             if ('if __name__ == "__main__":' in open(p).read() or p.endswith("__main__.py"))
             and not p.startswith(os.path.join(REPO, "tests"))
             and ".venv" not in p}
    covered = set(FILES) | {m.replace(".", "/") + ".py" for m in MODULES} | {"relift/eval/__main__.py"}
    internal = {"relift/grader.py"}  # started by relift.reward, never by a user
    assert mains - covered - internal == set()


COMMANDS = [["-m", m] for m in MODULES] + [["-m", "relift.eval", "run"]] + [[f] for f in FILES]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_exits_0_with_the_usage(command):
    result = subprocess.run([sys.executable, *command, "--help"], capture_output=True, text=True, cwd=REPO,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage: ") and "Traceback" not in result.stderr


def test_relift_mains_help_lists_relifts_keys_with_their_comments():
    result = subprocess.run([sys.executable, "-m", "relift.main", "--help"], capture_output=True, text=True, timeout=60)
    assert "DRY_RUN=1 python -m relift.main" in result.stdout and "--cfg job" in result.stdout
    assert "\nrelift:\n" in result.stdout and "  sft_trigger_size: 128" in result.stdout
    assert "# M: a supervised update runs when the buffer holds this many questions" in result.stdout
    assert "actor_rollout_ref" not in result.stdout.split("\nrelift:\n")[1]  # relift's keys only
    assert len(result.stdout.splitlines()) < 250


@pytest.mark.parametrize("script", SCRIPTS, ids=os.path.basename)
def test_each_script_refuses_sh_and_source_and_prints_its_header_for_help(script):
    name = os.path.relpath(script, REPO)
    refused = subprocess.run(["sh", script], capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr == f"[relift] run it with bash: bash {script}\n"
    # The user's shell survives a `source` of the script.
    sourced = subprocess.run(["bash", "-c", f'source "{script}"; echo "shell still here: $?"'], capture_output=True,
                             text=True, timeout=30)
    assert sourced.stdout == "shell still here: 2\n"
    assert sourced.stderr == f"[relift] run it with bash, not source: bash {script}\n"
    helped = subprocess.run(["bash", script, "--help"], capture_output=True, text=True, timeout=30)
    header = [line[2:] for line in open(script).read().splitlines()[1:]]
    assert helped.returncode == 0 and helped.stdout.splitlines()[0] == header[0], (name, helped.stdout)


def test_dry_run_has_one_meaning_everywhere(monkeypatch, tmp_path):
    from relift.main import run

    monkeypatch.setenv("DRY_RUN", "true")
    with pytest.raises(SystemExit) as refused:
        run(composed("device=cpu"))
    assert str(refused.value) == ("[relift] DRY_RUN=true: set DRY_RUN=1 to check without starting anything, or "
                                  "unset it to run")
    for script in ("qwen2.5-math-7b-sft-baseline.sh", "qwen2.5-math-7b-sft-rl-baseline.sh"):
        result = subprocess.run(["bash", os.path.join(REPO, "examples", script)], capture_output=True, text=True,
                                timeout=60, cwd=tmp_path, env={**os.environ, "DRY_RUN": "true",
                                                               "MODEL": str(tmp_path), "OUT": str(tmp_path / "out")})
        assert result.returncode == 2 and result.stderr.endswith(str(refused.value) + "\n"), result.stderr
        assert not (tmp_path / "out").exists()


def test_the_model_folder_is_model_or_under_model_root(tmp_path):
    script = tmp_path / "script.sh"  # a script of examples/, as far as common.sh can tell
    script.write_text(f'source "{REPO}/examples/common.sh"\ndefault_model Qwen2.5-Math-7B-16k-think\n')
    folder = {}
    for name, env in [("model", {"MODEL": "/m/mine", "MODEL_ROOT": "/r"}), ("root", {"MODEL_ROOT": "/r"}),
                      ("reference's name", {"MODEL_ROOT_PATH": "/p"})]:
        result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30,
                                env={**without("MODEL", "MODEL_ROOT", "MODEL_ROOT_PATH"), **env})
        folder[name] = result.stdout.strip()
    assert folder == {"model": "/m/mine", "root": "/r/Qwen2.5-Math-7B-16k-think",
                      "reference's name": "/p/Qwen2.5-Math-7B-16k-think"}

    # Neither: the script stops with one line instead of training from /Qwen2.5-Math-7B-16k-think.
    result = subprocess.run(["bash", os.path.join(REPO, "examples", "qwen2.5-math-7b.sh")], capture_output=True,
                            text=True, timeout=60, env=without("MODEL", "MODEL_ROOT", "MODEL_ROOT_PATH"))
    assert result.returncode == 2
    assert result.stderr == ("[relift] set MODEL to the model's folder, or MODEL_ROOT to the folder that holds "
                             "Qwen2.5-Math-7B-16k-think\n")
