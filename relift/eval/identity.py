"""What makes one folder of results comparable: the model (its path and a fingerprint of its weights) and the
settings that change a sample (sampling, template, seed, samples per row, the benchmark files). It is
written once as `run.json` beside `samples.jsonl`; a resume under other identities is refused.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os

FILE = "run.json"
# Bytes read from each weight file: its head, its tail and evenly spaced pieces between. Training changes
# every tensor, so two checkpoints of one architecture differ in each piece; reading all of a 15 GB model
# would take minutes.
PIECE = 1 << 20
PIECES = 8


def file_fingerprint(path: str) -> str:
    """sha256 of a file's size and PIECES pieces of PIECE bytes spread over it (all of a small file)."""
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= PIECE * PIECES:
            digest.update(f.read())
        else:
            for i in range(PIECES):
                f.seek((size - PIECE) * i // (PIECES - 1))
                digest.update(f.read(PIECE))
    return digest.hexdigest()


def weights_fingerprint(model_path: str) -> str | None:
    """One fingerprint of a local model folder's weight files and config.json; None for a hub name."""
    if not os.path.isdir(model_path):
        return None
    files = sorted(glob.glob(os.path.join(model_path, "*.safetensors")) + glob.glob(os.path.join(model_path, "*.bin"))
                   + glob.glob(os.path.join(model_path, "config.json")))
    digest = hashlib.sha256()
    for path in files:
        digest.update(os.path.basename(path).encode() + file_fingerprint(path).encode())
    return digest.hexdigest()


def identity(model_path: str, settings: dict, data: list[str]) -> dict:
    """The run's identity: model path and weights, the sampling settings, each benchmark file's fingerprint."""
    return {"model": os.path.abspath(model_path) if os.path.exists(model_path) else model_path,
            "weights": weights_fingerprint(model_path), "settings": settings,
            "data": {os.path.basename(path): file_fingerprint(path) for path in data}}


def mismatch(folder: str, wanted: dict) -> str | None:
    """Why the results in `folder` cannot be continued by a run of identity `wanted`; None when they can (or
    the folder holds none). Results without run.json (an older relift) cannot be told apart: refused."""
    path = os.path.join(folder, FILE)
    if not os.path.exists(path):
        return (f"{folder} holds samples but no {FILE}: which model made them is unknown"
                if os.path.exists(os.path.join(folder, "samples.jsonl")) else None)
    with open(path) as f:
        found = json.load(f)
    if found["model"] != wanted["model"] or found["weights"] != wanted["weights"]:
        changed = "the model" if found["model"] != wanted["model"] else "the model's weights"
        return f"{folder} holds samples of {found['model']}, and {changed} differ ({wanted['model']})"
    for key in sorted(set(found["settings"]) | set(wanted["settings"])):
        if found["settings"].get(key) != wanted["settings"].get(key):
            return (f"{folder} holds samples made with {key}={found['settings'].get(key)}, this run asks "
                    f"{key}={wanted['settings'].get(key)}")
    for name in sorted(set(found["data"]) & set(wanted["data"])):
        if found["data"][name] != wanted["data"][name]:
            return f"{folder} holds samples of another {name} (the file changed)"
    return None
