"""Benchmark rows -> the samples to produce."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass

# The bundled benchmarks, relative to the repository's root, where eval_scripts/inference.sh runs (the package
# may be installed elsewhere): --data names other files.
DEFAULT_DATA = [os.path.join("dataset", name)
                for name in ("math_eval.avg32.parquet", "gpqa_diamond.parquet", "arc_c.parquet")]


@dataclass
class Item:
    """One sample to produce: row `row` of `file`, sample number `sample`."""

    file: str
    row: int
    sample: int
    benchmark: str
    messages: list[dict]
    ground_truth: str

    @property
    def key(self) -> tuple[str, int, int]:
        return os.path.basename(self.file), self.row, self.sample


def load_items(files: list[str], n: int, max_rows: int | None) -> list[Item]:
    from relift.data import as_list, read_table

    items = []
    for path in files:
        frame = read_table(path)
        taken: dict[str, int] = defaultdict(int)
        for row, record in enumerate(frame.to_dict("records")):
            benchmark = record["data_source"]
            if max_rows is not None and taken[benchmark] >= max_rows:
                continue
            taken[benchmark] += 1
            messages = [dict(m) for m in as_list(record["prompt"])]
            for sample in range(n):
                items.append(Item(path, row, sample, benchmark, messages, str(record["reward_model"]["ground_truth"])))
    return items
