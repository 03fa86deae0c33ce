"""The best model by validation score, kept in Hugging Face format next to the checkpoints.

    <trainer.default_local_dir>/best -> best_step_<N>/   (config, tokenizer, weights, relift_best.json)

`best` is a symbolic link, replaced atomically: whoever reads it (eval_scripts/inference.sh) sees a
complete model, the previous best until the new one is entirely written. The score is the mean over
validation data sources of veRL's core metric (`val-core/<source>/acc/mean@<n>`, or `reward` when the
reward has no `acc`).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil

from relift.checkpoints import BEST_FOLDER, BEST_INFO_FILE, BEST_LINK

_CORE = re.compile(r"^val-core/.+/(acc|reward)/mean@\d+$")  # data sources may contain "/"


def validation_score(metrics: dict) -> float | None:
    """Mean of veRL's per-source core validation means; None without validation metrics."""
    values = [float(value) for key, value in metrics.items() if _CORE.match(key)]
    return sum(values) / len(values) if values else None


def improves(score: float | None, best_so_far: float | None) -> bool:
    """Whether a validation score makes a new best model: strictly above the best so far (the first of equal
    scores is kept), and any score when there is none yet."""
    return score is not None and (best_so_far is None or score > best_so_far)


def point_link(link: str, target: str) -> None:
    """Make `link` a symbolic link to `target` (relative to the link's folder), replacing it atomically."""
    tmp = os.path.join(os.path.dirname(link), f".{os.path.basename(link)}.tmp-{os.getpid()}")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def publish(staged_model: str, run_dir: str, step: int, info: dict) -> str:
    """Move a fully written Hugging Face model folder to `run_dir/best_step_<step>`, point `run_dir/best`
    at it and remove the previous best. Returns the new folder."""
    with open(os.path.join(staged_model, BEST_INFO_FILE), "w") as f:
        json.dump(info, f, indent=2)
    folder = os.path.join(run_dir, BEST_FOLDER.format(step=step))
    if os.path.exists(folder):  # the same step validated again after a resume
        shutil.rmtree(folder)
    os.rename(staged_model, folder)
    point_link(os.path.join(run_dir, BEST_LINK), os.path.basename(folder))
    for old in glob.glob(os.path.join(run_dir, BEST_FOLDER.format(step="*"))):
        if old != folder:
            shutil.rmtree(old)
    return folder
