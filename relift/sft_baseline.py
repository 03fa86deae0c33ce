"""SFT-only baseline: veRL's own SFT trainer (`verl.trainer.sft_trainer.SFTTrainer`) on relift's training data.

    python -m relift.sft_baseline --train relift_train.parquet --model MODEL_DIR --out RUN_DIR \\
        --steps N --batch-size B --lr LR [--save-freq K] [--device cpu] [hydra overrides of sft_trainer_engine ...]
    torchrun --nproc-per-node 8 -m relift.sft_baseline ...   # on GPUs, unchanged

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
  `SFTTrainer(config).fit()` rather than `run_sft`.

The HF model of every saved step is in RUN_DIR/checkpoints/global_step_K/huggingface.
"""

from __future__ import annotations

import argparse
import glob
import os
import socket
import sys

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


def rendered_pairs(frame, tokenizer):
    """(prompt rendered with the generation prompt, demonstration as relift's supervised update trains it)."""
    from relift.sft import demonstration_text, strip_think_prefix

    for prompt, target in zip(frame["prompt"], frame["target"], strict=True):
        prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
        rendered = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        yield prompt, rendered, strip_think_prefix(rendered, demonstration_text(target))


def convert(train: str, out: str, tokenizer) -> int:
    """relift rows -> veRL `messages` rows. When the generation prompt opens the think block, the assistant
    turn starts with it too: veRL masks the generation prompt's tokens at the start of the assistant turn."""
    import pandas as pd

    from relift.data import validate_file, write_parquet_atomic
    from relift.sft import THINK_OPEN

    validate_file(train, require_target=True)
    frame = pd.read_parquet(train)
    messages = []
    for prompt, rendered, demonstration in rendered_pairs(frame, tokenizer):
        opened = THINK_OPEN if rendered.endswith(THINK_OPEN) else ""
        messages.append(prompt + [{"role": "assistant", "content": opened + demonstration}])
    write_parquet_atomic(pd.DataFrame({"messages": messages}), out)
    return len(messages)


def check_layout(dataset, train: str, tokenizer, rows: int = CHECK_ROWS) -> None:
    """veRL's tokens and loss mask == relift's: rendered prompt (no loss), then demonstration + EOS (loss)."""
    import pandas as pd

    frame = pd.read_parquet(train).head(rows)
    for i, (_, rendered, demonstration) in enumerate(rendered_pairs(frame, tokenizer)):
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
    common = [
        f"model.path={args.model}",
        f"data.train_files={data}",
        "data.val_files=null",
        f"data.train_batch_size={args.batch_size}",
        f"data.max_length={args.max_length}",
        "data.custom_cls.path=pkg://relift.sft_baseline",
        "data.custom_cls.name=DemonstrationSFTDataset",
        f"optim.lr={args.lr}",
        "optim.lr_scheduler_type=constant",
        "optim.lr_warmup_steps=0",
        f"trainer.total_training_steps={args.steps}",
        # An upper bound: fit() returns after total_training_steps.
        f"trainer.total_epochs={args.steps}",
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", required=True, help="relift training parquet (prompt, target)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--save-freq", type=int, default=-1, help="also save every K steps (the last is saved)")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--device", default="cuda", help="cpu, or veRL's device (cuda, npu)")
    parser.add_argument("overrides", nargs="*", help="hydra overrides of verl's sft_trainer_engine config")
    args = parser.parse_args(argv)
    args.out = os.path.abspath(args.out)
    sys.stdout.reconfigure(line_buffering=True)

    if args.device == "cpu":
        # Before veRL is imported: it resolves the platform at import time.
        from relift.main import CPU_ENV

        os.environ.update(CPU_ENV)
        for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
            os.environ.setdefault(key, value)
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    os.makedirs(args.out, exist_ok=True)
    os.environ.setdefault("VERL_FILE_LOGGER_PATH", os.path.join(args.out, "metrics.jsonl"))

    import torch
    from hydra import compose, initialize_config_module
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from verl.trainer.sft_trainer import SFTTrainer
    from verl.utils.device import auto_set_device
    from verl.utils.distributed import destroy_global_process_group, initialize_global_process_group

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    data = os.path.join(args.out, "sft_data.parquet")
    # Every rank writes the same file, atomically, and reads a complete one.
    rows = convert(args.train, data, tokenizer)
    print(f"[sft_baseline] {args.train}: {rows} rows -> {data}")

    with initialize_config_module("verl.trainer.config", version_base=None):
        config = compose("sft_trainer_engine", overrides=overrides(args, data))
    auto_set_device(config)

    if args.device == "cpu":
        torch.distributed.init_process_group(backend="gloo")
    else:
        initialize_global_process_group()
    try:
        trainer = SFTTrainer(config)
        check_layout(trainer.train_dataset, args.train, tokenizer)
        trainer.fit()
    finally:
        destroy_global_process_group()

    if int(os.environ.get("RANK", "0")) == 0:
        saved = glob.glob(os.path.join(config.trainer.default_local_dir, "global_step_*", "huggingface"))
        saved.sort(key=lambda path: int(os.path.basename(os.path.dirname(path))[len("global_step_") :]))
        for path in saved:
            print(f"[sft_baseline] HF model: {path}")
        AutoModelForCausalLM.from_pretrained(saved[-1])
        print(f"[sft_baseline] final HF model loads: {saved[-1]}")


if __name__ == "__main__":
    main()
