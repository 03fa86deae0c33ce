"""relift's Hydra configuration: relift_trainer.yaml (veRL's ppo_trainer plus ReLIFT's keys), the one home
of every default, and its groups (device/, toy/, interleave/)."""

import os

from omegaconf import DictConfig, OmegaConf

TRAINER_YAML = os.path.join(os.path.dirname(os.path.abspath(__file__)), "relift_trainer.yaml")


def trainer_yaml() -> DictConfig:
    """relift_trainer.yaml as written (not composed with veRL's keys): the defaults, for code that runs
    outside the trainer (dataset/prepare_train.py, relift.eval, the reward called directly)."""
    return OmegaConf.load(TRAINER_YAML)
