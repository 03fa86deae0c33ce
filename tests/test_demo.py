"""The demo's terminal output: the verdict on what the warm start knew, and which lines of a run reach the
terminal (`run_logged`)."""
import subprocess
import sys
import time

import psutil

from relift.demo import knowledge_verdict
from relift.toy.runs import run_logged


def test_the_verdict_tells_a_dip_that_recovers_from_a_loss():
    assert knowledge_verdict({"accuracy": 0.91, "step": 10}, 1.0).startswith("kept: held-out copy 0.91")
    assert knowledge_verdict({"accuracy": 0.54, "step": 10}, 1.0) == (
        "dipped: held-out copy 0.54 at its lowest (step 10; floor 0.80), 1.00 at the end")
    assert knowledge_verdict({"accuracy": 0.02, "step": 30}, 0.45).startswith("LOST: held-out copy 0.02")


def test_the_terminal_gets_relifts_lines_and_blocks_the_file_everything(tmp_path, capsys):
    ray = "\x1b[36m(ReLIFTTaskRunner pid=1)\x1b[0m "
    lines = [f"{ray}INFO veRL noise", f"{ray}[relift] step    1 | reward 0.5", f"{ray}[relift] compute for this run",
             f"{ray}  wall time        0.1 h", f"{ray}  tokens           5", f"{ray}Loaded 3 rows",
             "  indented, but after a line that is not relift's"]
    (tmp_path / "output.txt").write_text("\n".join(lines) + "\n")
    script = "import sys; sys.stdout.write(open(sys.argv[1]).read())"
    run_logged([sys.executable, "-c", script, str(tmp_path / "output.txt")], log_path=str(tmp_path / "run.log"))
    shown = capsys.readouterr().out.splitlines()[1:]  # after the command line
    assert shown == ["[relift] step    1 | reward 0.5", "[relift] compute for this run", "  wall time        0.1 h",
                     "  tokens           5"]
    assert (tmp_path / "run.log").read_text().splitlines() == lines


def test_a_sigterm_to_the_wrapper_stops_the_command_it_runs(tmp_path):
    """`kill <pid>` of make demo / make bench: the training they started gets the SIGTERM too (relift.main then
    stops its Ray) instead of running on without its parent."""
    log = tmp_path / "run.log"
    child = "import time; print('[relift] ready', flush=True); time.sleep(600)"
    wrapper = subprocess.Popen([sys.executable, "-c", "import sys; from relift.toy.runs import run_logged; "
                                f"run_logged([sys.executable, '-c', {child!r}], log_path={str(log)!r})"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children = []
    try:
        deadline = time.monotonic() + 120
        while not (log.exists() and "ready" in log.read_text()):
            assert wrapper.poll() is None and time.monotonic() < deadline, wrapper.communicate()
            time.sleep(0.2)
        children = psutil.Process(wrapper.pid).children(recursive=True)
        assert children, "the command was not running"
        wrapper.terminate()
        _, stderr = wrapper.communicate(timeout=60)
        _, alive = psutil.wait_procs(children, timeout=30)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
        for process in children:  # what a failing run left, by its pid
            if process.is_running():
                process.kill()
    assert alive == [], [p.cmdline() for p in alive]
    assert wrapper.returncode == 1 and "failed (exit -15)" in stderr, stderr
