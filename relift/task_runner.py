"""The Ray task that builds datasets, workers and the trainer: veRL's `BaseTaskRunner` with ReLIFT's
worker class (the actor with the supervised update) and trainer class."""

from __future__ import annotations

import ray
from omegaconf import OmegaConf
from verl.trainer.main_ppo_v0 import BaseTaskRunner
from verl.trainer.ppo.utils import create_rl_dataset, create_rl_sampler, need_critic, need_reference_policy
from verl.utils.config import omega_conf_to_dataclass, validate_config
from verl.utils.dataset.rl_dataset import collate_fn
from verl.utils.import_utils import load_class_from_fqn
from verl.workers.config import HFModelConfig

from relift.workers import ReLIFTActorRolloutRefWorker


@ray.remote(num_cpus=1)
class ReLIFTTaskRunner(BaseTaskRunner):
    def add_actor_rollout_worker(self, config):
        _, worker_group_cls = super().add_actor_rollout_worker(config)
        for role in self.role_worker_mapping:
            self.role_worker_mapping[role] = ray.remote(ReLIFTActorRolloutRefWorker)
        return ReLIFTActorRolloutRefWorker, worker_group_cls

    def run(self, config, trainer_cls: str = "relift.trainer.ReLIFTTrainer"):
        """`trainer_cls` is a class path so that tests can run veRL's plain `RayPPOTrainer` on the same setup."""
        OmegaConf.resolve(config)
        _, worker_group_cls = self.add_actor_rollout_worker(config)
        self.add_critic_worker(config)
        self.add_reward_model_resource_pool(config)
        validate_config(config=config, use_reference_policy=need_reference_policy(config),
                        use_critic=need_critic(config))

        model_config: HFModelConfig = omega_conf_to_dataclass(config.actor_rollout_ref.model)
        tokenizer, processor = model_config.tokenizer, model_config.processor
        train_dataset = create_rl_dataset(
            config.data.train_files, config.data, tokenizer, processor, is_train=True,
            max_samples=config.data.get("train_max_samples", -1),
        )
        val_dataset = create_rl_dataset(
            config.data.val_files, config.data, tokenizer, processor, is_train=False,
            max_samples=config.data.get("val_max_samples", -1),
        )
        trainer = load_class_from_fqn(trainer_cls, "trainer")(
            config=config,
            tokenizer=tokenizer,
            processor=processor,
            role_worker_mapping=self.role_worker_mapping,
            resource_pool_manager=self.init_resource_pool_mgr(config),
            ray_worker_group_cls=worker_group_cls,
            train_dataset=train_dataset,
            val_dataset=val_dataset,
            collate_fn=collate_fn,
            train_sampler=create_rl_sampler(config.data, train_dataset),
        )
        trainer.init_workers()
        return trainer.fit() or []  # relift's closing lines; veRL's fit() returns None


class KeepResult:
    """A task-runner class for veRL's `run_ppo`, which discards what the runner's run() returns: this one
    records the ObjectRef of each run in `results`, for the driver to read after run_ppo returns. It
    forwards the two calls run_ppo makes on the class, `remote()` and `options()`."""

    def __init__(self, actor_class, results: list | None = None):
        self.actor_class = actor_class
        self.results: list[ray.ObjectRef] = [] if results is None else results

    def options(self, **options) -> KeepResult:
        return KeepResult(self.actor_class.options(**options), self.results)

    def remote(self) -> _RecordingHandle:
        return _RecordingHandle(self.actor_class.remote(), self.results)


class _RecordingHandle:
    def __init__(self, runner, results: list):
        self.run = _RecordingMethod(runner.run, results)


class _RecordingMethod:
    def __init__(self, method, results: list):
        self.method, self.results = method, results

    def remote(self, *args, **kwargs) -> ray.ObjectRef:
        self.results.append(self.method.remote(*args, **kwargs))
        return self.results[-1]
