"""The demo's terminal output: the verdict on what the warm start knew, and which lines of a run reach the
terminal (`run_logged`)."""
import sys

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
