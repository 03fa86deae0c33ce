"""Math grading in separate processes, bounded in time: `python -m relift.grader` is one grader.

math-verify's timeouts use SIGALRM, which works only on a process's main thread, while veRL calls the
reward from executor threads inside Ray workers. So each answer goes to a grader process over a pipe
(one JSON line each way); the grader answers within `budget_s` (a SIGALRM timer on its main thread),
and the caller waits at most its own timeout, after which the grader is killed and replaced.

Plain subprocesses with pipes, not `multiprocessing`: nothing to re-import from the caller's main module,
no semaphores for the resource tracker to complain about, and a grader ends when its caller does: it
reads EOF on stdin after a normal exit, and the kernel kills it when its parent dies (PR_SET_PDEATHSIG),
even by `kill -9` in the middle of an answer.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading

PR_SET_PDEATHSIG = 1


class GraderFailed(RuntimeError):
    """The grader process could not start or died: an infrastructure failure, not a wrong answer."""


def default_processes() -> int:
    """`RELIFT_GRADER_PROCESSES`, else one per CPU this process may use, at most 8."""
    value = os.environ.get("RELIFT_GRADER_PROCESSES")
    if value is not None:
        return int(value)
    return max(1, min(8, len(os.sched_getaffinity(0))))


class _Spawner:
    """Starts grader processes from one thread that lives as long as the process: the kernel sends the
    parent-death signal when the *thread* that started a child ends, and executor threads come and go."""

    def __init__(self):
        self._requests: queue.Queue[queue.Queue] = queue.Queue()
        threading.Thread(target=self._serve, name="relift-grader-spawner", daemon=True).start()

    def _serve(self) -> None:
        while True:
            reply = self._requests.get()
            try:
                reply.put(subprocess.Popen(
                    [sys.executable, "-m", "relift.grader"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, text=True, bufsize=1,
                ))
            except OSError as error:
                reply.put(error)

    def spawn(self) -> subprocess.Popen:
        reply: queue.Queue = queue.Queue(1)
        self._requests.put(reply)
        result = reply.get()
        if isinstance(result, OSError):
            raise result
        return result


class _Grader:
    """One grader process; used by one thread at a time."""

    def __init__(self, spawner: _Spawner):
        self.process = spawner.spawn()

    def ask(self, request: dict, timeout_s: float) -> dict:
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise GraderFailed(f"grader process {self.process.pid} is gone ({error})") from None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        if not ready:
            raise TimeoutError
        line = self.process.stdout.readline()
        if not line:
            raise GraderFailed(f"grader process {self.process.pid} exited with {self.process.wait()}")
        return json.loads(line)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


class GraderPool:
    """Up to `processes` graders, started on demand; a grader that overruns is killed and replaced.

    The idle queue holds graders and free slots (None): a caller that gets a free slot starts a grader in
    it, so one that waits while another's grader is killed is not left waiting for good."""

    def __init__(self, processes: int | None = None):
        self.processes = processes
        self._idle: queue.LifoQueue[_Grader | None] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._spawner: _Spawner | None = None

    def _take(self) -> _Grader:
        with self._lock:
            if self._spawner is None:
                self.processes = default_processes() if self.processes is None else self.processes
                if self.processes < 1:
                    raise GraderFailed(f"RELIFT_GRADER_PROCESSES={self.processes}: at least 1 grader process is needed")
                self._spawner = _Spawner()
                for _ in range(self.processes):
                    self._idle.put(None)
        grader = self._idle.get()
        if grader is not None:
            return grader
        try:
            return _Grader(self._spawner)
        except OSError as error:
            self._idle.put(None)
            raise GraderFailed(f"cannot start a grader process: {error}") from None

    def verify(self, answers: list[str], golds: list[str], budget_s: float, timeout_s: float) -> dict:
        """Whether any of the texts `answers` (one answer's readings) equals any of `golds` (the ground truth's,
        parsed as they are) by math-verify: {"correct", "extracted" (of answers[0]), "status": ok | timeout};
        raises GraderFailed, TimeoutError."""
        grader = self._take()
        try:
            reply = grader.ask({"answers": answers, "golds": golds, "budget_s": budget_s}, timeout_s)
        except BaseException:
            grader.close()
            self._idle.put(None)
            raise
        self._idle.put(grader)
        return reply


# ---- the grader process ------------------------------------------------------------------------------


class _OverBudget(BaseException):  # math-verify catches Exception while it parses
    pass


def _on_alarm(signum, frame):
    raise _OverBudget


def _verify(answers: list[str], golds: list[str]) -> tuple[bool, str]:
    from math_verify import parse, verify

    # The budget timer below replaces math-verify's whole-second alarms (they would reset it).
    gold = [value for text in golds for value in parse(text, parsing_timeout=None)]
    parsed = [parse(text, parsing_timeout=None) for text in answers]
    first = parsed[0]
    extracted = str(first[1]) if len(first) > 1 else (str(first[0]) if first else "")
    return bool(verify(gold, [value for values in parsed for value in values], timeout_seconds=None)), extracted


def serve() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    import logging

    import math_verify  # noqa: F401  (imported before the first answer, not inside its budget)

    # math-verify warns once that its own timeouts are off: the budget timer is the timeout here.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    signal.signal(signal.SIGALRM, _on_alarm)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, request["budget_s"])
                correct, extracted = _verify(request["answers"], request["golds"])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            reply = {"correct": correct, "extracted": extracted, "status": "ok"}
        except _OverBudget:
            reply = {"correct": False, "extracted": "", "status": "timeout"}
        except Exception:  # a parser crash on a malformed answer is a wrong answer
            reply = {"correct": False, "extracted": "", "status": "ok"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
