"""The files of one model's evaluation: samples.jsonl (append-only, resumable), summary.json, table.md."""

from __future__ import annotations

import json
import os

from relift.data import write_text_atomic
from relift.eval.metrics import markdown_table


def read_done(path: str) -> dict[tuple, dict]:
    """Samples already written. A torn last line (a crash mid-write) is cut off and its sample redone."""
    done = {}
    if os.path.exists(path):
        with open(path, "rb+") as f:
            content = f.read()
            if content and not content.endswith(b"\n"):
                f.truncate(content.rfind(b"\n") + 1)
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                done[(record["file"], record["row"], record["sample"])] = record
    return done


class SampleLog:
    """samples.jsonl: one JSON line per sample, keyed by (file, row, sample); appended and fsynced per batch."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.done = read_done(path)

    def append(self, records: list[dict]) -> None:
        with open(self.path, "a") as sink:
            for record in records:
                sink.write(json.dumps(record) + "\n")
                self.done[(record["file"], record["row"], record["sample"])] = record
            sink.flush()
            os.fsync(sink.fileno())


def write_outputs(out_dir: str, name: str, summary: dict) -> str:
    table = markdown_table({name: summary})
    write_text_atomic(os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=2))
    write_text_atomic(os.path.join(out_dir, "table.md"), table + "\n")
    return table
