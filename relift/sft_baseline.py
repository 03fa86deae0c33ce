"""SFT-only baseline: veRL's own SFT trainer (`verl.trainer.sft_trainer.SFTTrainer`) on relift's training data.

    python -m relift.sft_baseline --train relift_train.parquet --model MODEL_DIR --out RUN_DIR \\
        (--steps N | --epochs E) --batch-size B --lr LR [--lr-scheduler cosine --warmup-ratio R] \\
        [--save-freq K|after_each_epoch] [--device cpu] [--dry-run --world-size W] [hydra overrides ...]
    torchrun --nproc-per-node 8 -m relift.sft_baseline ...   # on GPUs, unchanged
    bash examples/qwen2.5-math-7b-sft-baseline.sh               # the paper's SFT-only run

The baseline that ReLIFT is compared with is plain supervised fine-tuning on the same demonstrations, so
it is veRL's trainer and config (`sft_trainer_engine.yaml`), not relift's code. This module only

- converts relift's rows (`prompt` = system + user messages, `target` = the assistant demonstration) to
  veRL's multi-turn format (`messages`) in RUN_DIR/sft_data.parquet;
- makes the loss see exactly what relift's supervised loss sees: the demonstration after the prompt
  rendered with the generation prompt, plus EOS. veRL's `MultiTurnSFTDataset` masks the generation prompt
  of the assistant turn (so a template that opens `<think>\\n` there needs the demonstration to start with
  it, as relift's `strip_think_prefix` assumes) but also trains the template's "\\n" after `<|im_end|>`;
  `DemonstrationSFTDataset` (loaded by veRL through `data.custom_cls`) drops that token from the loss.
  The first rows are checked token by token against relift's layout before training;
- on CPU, selects relift's CPU platform (as `relift.main` does) and creates the gloo process group itself:
  veRL's `initialize_global_process_group` asks for "cpu:gloo,cpu:gloo", which torch rejects. So it calls
  `SFTTrainer(config).fit()` rather than `run_sft`;
- resumes a checkpoint saved at the end of an epoch at the next epoch's first batch, which veRL 0.9.1 skips
  (veRL#7401, `epoch_resuming_trainer`): a resumed run trains exactly the steps it has left.

Before any model is built, every row must fit `--max-length` (veRL would stop mid-epoch at the first
that does not), the composition must keep veRL's run-time size rules (`config_problem`: the batch over
the data-parallel ranks, micro-batches or token budget, device meshes), and veRL's own config classes must
accept it; `--dry-run` stops there and prints the plan (rows, steps, schedule).

The HF model of every saved step is in RUN_DIR/checkpoints/global_step_K/huggingface, and RUN_DIR/final
links to the last one.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import math
import os
import socket
import sys
import tempfile
import time
import warnings
from functools import partial

from relift import accounting, cpu
from relift.checkpoints import ACCOUNT_FILE, SUMMARY_FILE, parameter_count
from relift.cli import HelpFormatter
from relift.data import write_text_atomic

CHECK_ROWS = 8


def __getattr__(name: str):
    # veRL imports this module again (data.custom_cls = pkg://relift.sft_baseline) after the platform is
    # chosen; defining the class lazily keeps veRL out of `python -m relift.sft_baseline`'s first import.
    if name != "DemonstrationSFTDataset":
        raise AttributeError(name)
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    class DemonstrationSFTDataset(MultiTurnSFTDataset):
        """veRL's multi-turn SFT dataset without loss on the template's tokens after the last trained EOS."""

        def __getitem__(self, item):
            row = super().__getitem__(item)
            trained_eos = ((row["input_ids"] == self.tokenizer.eos_token_id) & (row["loss_mask"] == 1)).nonzero()
            if len(trained_eos):
                row["loss_mask"][trained_eos[-1].item() + 1 :] = 0
            return row

    globals()[name] = DemonstrationSFTDataset
    return DemonstrationSFTDataset


def epoch_resuming_trainer(config):
    """veRL's `SFTTrainer(config)`, resuming with exactly the steps left. veRL 0.9.1 (veRL#7401) restores the
    train loader's state saved after an epoch's last batch, which is exhausted: the next epoch runs 0 batches,
    and the run ends one epoch short without its last save. Here the loader starts that epoch afresh, as in an
    uninterrupted run (fit() sets the sampler's epoch before iterating); a checkpoint saved mid-epoch resumes as
    in veRL. A checkpoint of the last step trains nothing (veRL would train one step more with --steps)."""
    from verl.trainer.sft_trainer import SFTTrainer

    class EpochResumingSFTTrainer(SFTTrainer):
        def __init__(self, config):
            self._started = time.monotonic()
            super().__init__(config)  # loads the latest checkpoint
            self.wall_before = 0.0  # the wall time of the sessions before a resume, saved with each checkpoint
            folder = os.path.join(config.trainer.default_local_dir, f"global_step_{self.resume_global_step}")
            if self.resume_global_step and os.path.exists(os.path.join(folder, ACCOUNT_FILE)):
                self.wall_before = accounting.load(os.path.join(folder, ACCOUNT_FILE)).wall_s
            save = self.ckpt_handler.save_checkpoint

            def save_with_wall_time(step):
                if self.rank == 0:  # before veRL's save, which marks the checkpoint as the latest last
                    folder = os.path.join(config.trainer.default_local_dir, f"global_step_{step}")
                    os.makedirs(folder, exist_ok=True)
                    write_text_atomic(os.path.join(folder, ACCOUNT_FILE),
                                      json.dumps(accounting.Account(wall_s=self.wall_s()).state_dict()))
                save(step=step)

            self.ckpt_handler.save_checkpoint = save_with_wall_time

        def wall_s(self) -> float:
            return self.wall_before + time.monotonic() - self._started

        def _build_dataloader(self):
            super()._build_dataloader()
            self._unstarted_loader_state = self.train_dataloader.state_dict()

        def fit(self):
            # __init__ loaded the checkpoint; fit() starts at epoch resume_global_step // steps_per_epoch.
            step = self.resume_global_step
            if step >= self.total_training_steps:
                if self.rank == 0:
                    print(f"[sft_baseline] the checkpoint is at the last step, {step}: nothing left to train")
                return
            if step and step % self.steps_per_epoch == 0:
                self.train_dataloader.load_state_dict(self._unstarted_loader_state)
            super().fit()

    return EpochResumingSFTTrainer(config)


def rendered_pairs(frame, tokenizer):
    """(prompt rendered with the generation prompt, demonstration as relift's supervised update trains it)."""
    from relift.layout import strip_think_prefix
    from relift.sft import demonstration_text

    for prompt, target in zip(frame["prompt"], frame["target"], strict=True):
        prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
        rendered = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        yield prompt, rendered, strip_think_prefix(rendered, demonstration_text(target))


def read_pairs(train: str, tokenizer) -> list[tuple[list[dict], str, str]]:
    """Validate the training file and render every row once: (prompt messages, rendered prompt, demonstration)."""
    import pandas as pd

    from relift.data import validate_file

    validate_file(train, require_target=True)
    return list(rendered_pairs(pd.read_parquet(train, columns=["prompt", "target"]), tokenizer))


def write_messages(pairs, out: str) -> None:
    """relift rows -> veRL `messages` rows. When the generation prompt opens the think block, the assistant
    turn starts with it too: veRL masks the generation prompt's tokens at the start of the assistant turn."""
    import pandas as pd

    from relift.data import write_parquet_atomic
    from relift.layout import OPENED_THINK

    messages = []
    for prompt, rendered, demonstration in pairs:
        opened = OPENED_THINK if rendered.endswith(OPENED_THINK) else ""
        messages.append(prompt + [{"role": "assistant", "content": opened + demonstration}])
    write_parquet_atomic(pd.DataFrame({"messages": messages}), out)


def check_layout(dataset, pairs, tokenizer, rows: int = CHECK_ROWS) -> None:
    """veRL's tokens and loss mask == relift's: rendered prompt (no loss), then demonstration + EOS (loss)."""
    for i, (_, rendered, demonstration) in enumerate(pairs[:rows]):
        prompt_ids = tokenizer.encode(rendered, add_special_tokens=False)
        ids = prompt_ids + tokenizer.encode(demonstration, add_special_tokens=False) + [tokenizer.eos_token_id]
        mask = [0] * len(prompt_ids) + [1] * (len(ids) - len(prompt_ids))
        item = dataset[i]
        got_ids, got_mask = item["input_ids"].tolist(), item["loss_mask"].tolist()
        if got_ids[: len(ids)] != ids or got_mask[: len(ids)] != mask or any(got_mask[len(ids) :]):
            raise ValueError(
                f"row {i}: veRL's SFT sequence differs from relift's prompt + demonstration + EOS:\n"
                f"veRL  : {list(zip(tokenizer.convert_ids_to_tokens(got_ids), got_mask, strict=True))}\n"
                f"relift: {list(zip(tokenizer.convert_ids_to_tokens(ids), mask, strict=True))}"
            )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def overrides(args, data: str) -> list[str]:
    length = [f"trainer.total_training_steps={args.steps}", f"trainer.total_epochs={args.steps}"] if args.steps else [
        "trainer.total_training_steps=null", f"trainer.total_epochs={args.epochs}"]
    common = [
        f"model.path={args.model}",
        f"data.train_files={data}",
        "data.val_files=null",
        f"data.train_batch_size={args.batch_size}",
        f"data.max_length={args.max_length}",
        "data.custom_cls.path=pkg://relift.sft_baseline",
        "data.custom_cls.name=DemonstrationSFTDataset",
        f"optim.lr={args.lr}",
        f"optim.lr_scheduler_type={args.lr_scheduler}",
        "optim.lr_warmup_steps=-1",  # -1: veRL takes lr_warmup_steps_ratio of the total steps
        f"optim.lr_warmup_steps_ratio={args.warmup_ratio}",
        # With --steps, total_epochs is an upper bound: fit() returns after total_training_steps.
        *length,
        f"trainer.save_freq={args.save_freq}",
        f"trainer.default_local_dir={os.path.join(args.out, 'checkpoints')}",
        "trainer.project_name=relift-sft-baseline",
        f"trainer.experiment_name={os.path.basename(os.path.normpath(args.out))}",
        "trainer.logger=[console,file]",
        "checkpoint.save_contents=[model,optimizer,extra,hf_model]",
    ]
    cpu = [
        # As relift/config/device/cpu.yaml for the actor: FSDP1 asks for an accelerator, flash-attention
        # and remove-padding are CUDA kernels, bf16 buys nothing on CPU. veRL's FSDP engine ignores
        # engine.dtype: without mixed_precision it casts parameters to bf16 and autocasts.
        "trainer.device=cpu",
        "engine.strategy=fsdp2",
        "+engine.mixed_precision={param_dtype:fp32,reduce_dtype:fp32,buffer_dtype:fp32}",
        "engine.use_torch_compile=false",
        "model.use_remove_padding=false",
        "model.enable_gradient_checkpointing=false",
        "+model.override_config.attn_implementation=sdpa",
        "data.num_workers=0",
    ]
    return common + (cpu if args.device == "cpu" else []) + args.overrides


def token_lengths(pairs, tokenizer) -> tuple[list[int], list[int]]:
    """(prompt tokens, demonstration tokens + EOS) per row."""
    _, prompts, demonstrations = zip(*pairs, strict=True)
    encode = partial(tokenizer, add_special_tokens=False)
    return ([len(p) for p in encode(list(prompts))["input_ids"]],
            [len(d) + 1 for d in encode(list(demonstrations))["input_ids"]])


def too_long(train: str, prompt_lengths: list[int], demo_lengths: list[int], max_length: int) -> str | None:
    """The first row whose prompt + demonstration + EOS exceeds max_length, as one line; None if all fit."""
    lengths = [p + d for p, d in zip(prompt_lengths, demo_lengths, strict=True)]
    over = [i for i, n in enumerate(lengths) if n > max_length]
    if not over:
        return None
    return (f"{train}: row {over[0]}, field target: prompt + demonstration is {lengths[over[0]]} tokens, over "
            f"--max-length {max_length} ({len(over)} of {len(lengths)} rows are); --max-length {max(lengths)} fits "
            f"every row, or drop long rows when preparing the data")


def steps_per_epoch(rows: int, batch_size: int, dp_size: int) -> int:
    """As veRL's SFT dataloader: each data-parallel rank drops its last rows (DistributedSampler and loader
    drop_last)."""
    return (rows // dp_size) // (batch_size // dp_size)


def config_problem(args, config) -> str | None:
    """The first of veRL 0.9.1's run-time size rules on the SFT trainer's path that the composition breaks, as
    one line; None if it keeps them all. (The RL trainer's rules: relift.checks.)

    - Ulysses size and engine.fsdp_size divide the ranks (relift.checks.mesh_problems); Ulysses needs
      model.use_remove_padding (verl/workers/engine/fsdp/transformer_impl.py:149).
    - --batch-size splits over the data-parallel size D = ranks / Ulysses size: veRL's loader takes batch // D
      rows per rank (verl/trainer/sft_trainer.py:241), fewer than asked when it does not split.
    - data.use_dynamic_bsz=false: batch / D % data.micro_batch_size_per_gpu (verl/workers/engine/utils.py:125);
      true: data.max_token_len_per_gpu x Ulysses size >= data.max_length, the longest sequence veRL's dataset
      makes (verl/utils/seqlen_balancing.py:384).
    - trainer.save_freq and trainer.test_freq are not 0: fit() takes the step modulo both
      (verl/trainer/sft_trainer.py:413).
    """
    from relift.checks import mesh_problems

    engine, data, world = config.engine, config.data, args.world_size
    sp = engine.ulysses_sequence_parallel_size
    meshes = mesh_problems("engine.ulysses_sequence_parallel_size", sp, "engine.fsdp_size", engine.fsdp_size, world)
    if meshes:
        return meshes[0]
    if sp > 1 and not config.model.use_remove_padding:
        return (f"engine.ulysses_sequence_parallel_size={sp} needs model.use_remove_padding=true (veRL's FSDP "
                "engine refuses it without): set model.use_remove_padding=true, or "
                "engine.ulysses_sequence_parallel_size=1")
    dp = world // sp
    if args.batch_size % dp:
        over = f"{dp} ranks" if sp == 1 else f"the data-parallel size {dp} ({world} ranks / Ulysses size {sp})"
        return f"--batch-size {args.batch_size} does not split over {over}; use a multiple of {dp}"
    per_rank, micro = args.batch_size // dp, data.micro_batch_size_per_gpu
    if not data.use_dynamic_bsz and per_rank % micro:
        return (f"data.micro_batch_size_per_gpu={micro} must divide the batch per data-parallel rank, --batch-size "
                f"{args.batch_size} / {dp} = {per_rank} (data.use_dynamic_bsz=false): "
                f"e.g. data.micro_batch_size_per_gpu={math.gcd(per_rank, micro)}")
    if data.use_dynamic_bsz and data.max_token_len_per_gpu * sp < data.max_length:
        times = f" (x Ulysses size {sp})" if sp > 1 else ""
        return (f"data.max_token_len_per_gpu={data.max_token_len_per_gpu}{times} is below --max-length "
                f"{data.max_length}, the longest sequence (data.use_dynamic_bsz=true packs micro-batches up to it): "
                f"set data.max_token_len_per_gpu={-(-data.max_length // sp)}")
    for key in ("save_freq", "test_freq"):
        if config.trainer[key] == 0:
            return (f"trainer.{key}=0: veRL's SFT trainer takes the step modulo it; use -1 (never), a step count "
                    "K > 0 or after_each_epoch")
    return None


def prepare(args, data: str, tokenizer):
    """Every check that needs no model weights nor process group; returns (veRL config, plan lines, (prompt
    lengths, demonstration lengths) in tokens, one per row)."""
    if not os.path.exists(os.path.join(args.model, "config.json")):
        raise SystemExit(f"[sft_baseline] --model {args.model}: no Hugging Face model there (no config.json)")
    with open(os.path.join(args.model, "config.json")) as f:
        positions = json.load(f).get("max_position_embeddings")
    if positions and args.max_length > positions:
        raise SystemExit(f"[sft_baseline] --max-length {args.max_length} is over the model's max_position_embeddings "
                         f"{positions} ({args.model}/config.json): use --max-length {positions}, or a longer-context "
                         f"model (examples/prepare_model.py --context)")
    from hydra import compose, initialize_config_module
    from verl.trainer.sft_trainer import create_sft_dataset
    from verl.utils.config import omega_conf_to_dataclass

    with initialize_config_module("verl.trainer.config", version_base=None):
        config = compose("sft_trainer_engine", overrides=overrides(args, data))
    problem = config_problem(args, config)
    if problem:
        raise SystemExit(f"[sft_baseline] {problem}")
    dp = args.world_size // config.engine.ulysses_sequence_parallel_size
    pairs = read_pairs(args.train, tokenizer)
    rows = len(pairs)
    per_epoch = steps_per_epoch(rows, args.batch_size, dp)
    if per_epoch == 0:
        raise SystemExit(f"[sft_baseline] {args.train}: {rows} rows make no batch of --batch-size {args.batch_size}")
    prompt_lengths, demo_lengths = token_lengths(pairs, tokenizer)
    problem = too_long(args.train, prompt_lengths, demo_lengths, args.max_length)
    if problem:
        raise SystemExit(f"[sft_baseline] {problem}")
    # Every rank writes the same file, atomically, and reads a complete one.
    write_messages(pairs, data)
    for section in ("model", "engine", "optim", "checkpoint"):  # what SFTTrainer builds first
        omega_conf_to_dataclass(config[section])
    check_layout(create_sft_dataset(data, config.data, tokenizer, None), pairs, tokenizer)

    total = args.steps or per_epoch * args.epochs
    warmup = int(total * args.warmup_ratio)
    plan = [
        f"{args.train}: {rows} demonstrations, all within {args.max_length} tokens",
        f"{args.world_size} rank(s), batch {args.batch_size} ({args.batch_size // dp} per rank), "
        f"{per_epoch} steps per epoch, {total} steps"
        + (f" ({args.epochs} epochs)" if args.epochs else f" ({total / per_epoch:.2f} epochs)"),
        f"lr {args.lr:g}, {args.lr_scheduler} schedule, {warmup} warm-up steps; "
        f"saves: {args.save_freq} and the last step",
        f"HF models -> {config.trainer.default_local_dir}/global_step_K/huggingface, {args.out}/final -> the last",
    ]
    return config, plan, (prompt_lengths, demo_lengths)


def link_final(out: str, checkpoints: str) -> str:
    """Point OUT/final at the last saved HF model (atomically), check it loads; returns its folder."""
    from transformers import AutoModelForCausalLM

    from relift.best import point_link

    saved = glob.glob(os.path.join(checkpoints, "global_step_*", "huggingface"))
    saved.sort(key=lambda path: int(os.path.basename(os.path.dirname(path))[len("global_step_") :]))
    for path in saved:
        print(f"[sft_baseline] HF model: {path}")
    AutoModelForCausalLM.from_pretrained(saved[-1])
    point_link(os.path.join(out, "final"), os.path.relpath(saved[-1], out))
    print(f"[sft_baseline] final HF model loads: {saved[-1]} ({os.path.join(out, 'final')})")
    return saved[-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("--train", required=True, help="relift training parquet (prompt, target)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True, help="run directory")
    length = parser.add_mutually_exclusive_group(required=True)
    length.add_argument("--steps", type=int, help="optimizer steps")
    length.add_argument("--epochs", type=int, help="passes over the data")
    parser.add_argument("--batch-size", type=int, required=True, help="demonstrations per optimizer step, all ranks")
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--lr-scheduler", choices=["constant", "cosine"], default="constant")
    parser.add_argument("--warmup-ratio", type=float, default=0.0, help="share of the steps with linear warm-up")
    parser.add_argument("--save-freq", default="-1", help="also save every K steps, or after_each_epoch")
    parser.add_argument("--max-length", type=int, default=1024, help="prompt + demonstration + EOS tokens")
    parser.add_argument("--device", default="cuda", help="cpu, or veRL's device (cuda, npu)")
    parser.add_argument("--dry-run", action="store_true", help="check configuration and data, print the plan, stop")
    parser.add_argument("--world-size", type=int, default=int(os.environ.get("WORLD_SIZE", "1")),
                        help="ranks to plan for (default: torchrun's WORLD_SIZE)")
    parser.add_argument("overrides", nargs="*", help="hydra overrides of verl's sft_trainer_engine config")
    args = parser.parse_args(argv)
    args.out = os.path.abspath(args.out)
    if not 0 <= args.warmup_ratio < 1:
        parser.error(f"--warmup-ratio {args.warmup_ratio}: must be in [0, 1), e.g. 0.1")
    sys.stdout.reconfigure(line_buffering=True)

    if args.device == "cpu":
        # Before veRL is imported: it resolves the platform at import time.
        cpu.use_cpu()
        for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
            os.environ.setdefault(key, value)
        os.environ.setdefault("MASTER_PORT", str(free_port()))

    # veRL lists the optional engines it lacks (torchtitan, megatron, ...); relift uses FSDP.
    warnings.filterwarnings("ignore", message=".* engine is not available")
    if args.dry_run:  # planned for GPUs, maybe checked on a machine without one: that is no news
        logging.getLogger("verl.plugin.platform.platform_manager").addFilter(lambda r: r.levelno >= logging.ERROR)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if args.dry_run:
        with tempfile.TemporaryDirectory() as scratch:
            _, plan, _ = prepare(args, os.path.join(scratch, "sft_data.parquet"), tokenizer)
        for line in plan:
            print(f"[sft_baseline] {line}")
        print("[sft_baseline] dry run: configuration and data valid; nothing started")
        return

    os.makedirs(args.out, exist_ok=True)
    os.environ.setdefault("VERL_FILE_LOGGER_PATH", os.path.join(args.out, "metrics.jsonl"))
    data = os.path.join(args.out, "sft_data.parquet")
    config, plan, lengths = prepare(args, data, tokenizer)
    plan.insert(1, f"veRL's messages rows: {data}")
    for line in plan:
        print(f"[sft_baseline] {line}")


    from verl.utils.device import auto_set_device
    from verl.utils.distributed import destroy_global_process_group, initialize_global_process_group

    auto_set_device(config)
    if args.device == "cpu":
        cpu.init_gloo()
    else:
        initialize_global_process_group()
    try:
        trainer = epoch_resuming_trainer(config)
        trainer.fit()
    finally:
        destroy_global_process_group()

    if int(os.environ.get("RANK", "0")) == 0:
        link_final(args.out, config.trainer.default_local_dir)
        write_account(args, trainer, *lengths)


def write_account(args, trainer, prompt_lengths: list[int], demo_lengths: list[int]) -> None:
    """OUT/summary.json and the console block (relift.accounting). Supervised tokens: the demonstrations'
    (with EOS) per pass, times the passes made; the mean row over a partial pass; the same with the prompts
    for the compute estimate."""
    steps = trainer.total_training_steps
    rows_trained = steps * args.batch_size
    per_row = rows_trained / len(demo_lengths)
    account = accounting.Account(
        arm="sft", experiment=os.path.basename(args.out), steps=steps, device=args.device, devices=args.world_size,
        wall_s=trainer.wall_s(), sft_tokens_trained=round(per_row * sum(demo_lengths)),
        tokens_in_sft_updates=round(per_row * (sum(prompt_lengths) + sum(demo_lengths))),
        parameters=parameter_count(args.model), sft_updates=steps, demos_available=len(demo_lengths),
        demos_used=min(rows_trained, len(demo_lengths)),
    )
    account.sft_wall_s = account.wall_s
    write_text_atomic(os.path.join(args.out, SUMMARY_FILE), json.dumps(account.summary(), indent=2))
    print("\n".join(account.lines()))


if __name__ == "__main__":
    main()
