"""Build a tiny Qwen2-architecture model and tokenizer offline, for the CPU demo, tests and benchmarks.

    python -m relift.toy.tiny_model --data dataset/synthetic/train.parquet --out outputs/tiny-qwen2

- tokenizer: byte-level BPE trained on the given data's text, Qwen's chat markup (`<|im_start|>`,
  `<|im_end|>` = EOS, `<|endoftext|>` = pad) and a chat template whose generation prompt opens the
  think block (`<|im_start|>assistant\\n<think>\\n`), like the "-think" models the paper trains.
  `<think>` / `</think>` are ordinary tokens so that decoding keeps them for the reward.
- model: `Qwen2ForCausalLM`, randomly initialised, then optionally warm-started with a few hundred
  supervised steps on part of the demonstrations, so that RL has questions it sometimes solves and
  ReLIFT has questions it never solves.
"""

from __future__ import annotations

import argparse
import json
import os

import pandas as pd
import torch

from relift.cli import HelpFormatter

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _texts(frame: pd.DataFrame) -> list[str]:
    from relift.sft import demonstration_text

    texts = []
    for prompt, target in zip(frame["prompt"], frame["target"], strict=True):
        texts.extend(m["content"] for m in prompt)
        texts.append(demonstration_text(target) or "")
    return texts


def build_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        chat_template=CHAT_TEMPLATE,
    )
    tokenizer.add_tokens(["<think>", "</think>"])
    return tokenizer


def build_model(vocab_size: int, eos_token_id: int, pad_token_id: int, hidden: int, layers: int, seed: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = eos_token_id
    model.generation_config.pad_token_id = pad_token_id
    return model


def warm_start(model, tokenizer, frame: pd.DataFrame, steps: int, lr: float, seed: int, batch_size: int) -> float:
    """Supervised steps on (prompt, demonstration) pairs; returns the last batch's mean NLL."""
    from relift.layout import strip_think_prefix
    from relift.sft import build_sft_batch, demonstration_text

    pairs = []
    for prompt, target in zip(frame["prompt"], frame["target"], strict=True):
        rendered = tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=False)
        demo = strip_think_prefix(rendered, demonstration_text(target))
        pairs.append((tokenizer.encode(rendered, add_special_tokens=False),
                      tokenizer.encode(demo, add_special_tokens=False)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        index = torch.randint(len(pairs), (batch_size,), generator=generator).tolist()
        batch = build_sft_batch(
            [pairs[i][0] for i in index],
            [pairs[i][1] for i in index],
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            max_target_len=1024,
        ).tensors
        logits = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=batch["position_ids"]
        ).logits
        prompt_len = batch["prompts"].shape[1]
        response_logits = logits[:, prompt_len - 1 : -1]
        nll = torch.nn.functional.cross_entropy(
            response_logits.reshape(-1, response_logits.shape[-1]), batch["responses"].reshape(-1), reduction="none"
        )
        mask = batch["response_mask"].reshape(-1).float()
        loss = (nll * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return float(loss.detach())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--data", required=True, help="training parquet whose text trains the tokenizer")
    parser.add_argument("--out", required=True)
    parser.add_argument("--vocab-size", type=int, default=384)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--warm-start-data", help="parquet of (prompt, target) rows for the warm start")
    parser.add_argument("--warm-start-steps", type=int, default=0)
    parser.add_argument("--warm-start-lr", type=float, default=1e-3)
    parser.add_argument("--warm-start-batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    frame = pd.read_parquet(args.data)
    os.makedirs(args.out, exist_ok=True)
    built = build_tokenizer(_texts(frame), args.vocab_size)
    built.save_pretrained(args.out)
    model = build_model(len(built), built.eos_token_id, built.pad_token_id, args.hidden, args.layers, args.seed)
    model.config.save_pretrained(args.out)
    # Reload as every consumer (veRL, the rollout, eval) will: with config.json present, transformers
    # maps a qwen2 model to its Qwen2 tokenizer, whose pre-tokenizer splits digits, so ids differ from
    # the built object's. Training the warm start with any other tokenizer would teach the wrong ids.
    tokenizer = AutoTokenizer.from_pretrained(args.out)
    summary = {"parameters": sum(p.numel() for p in model.parameters()), "vocab": len(tokenizer)}
    if args.warm_start_steps:
        warm = pd.read_parquet(args.warm_start_data or args.data)
        summary["warm_start_nll"] = warm_start(
            model, tokenizer, warm, args.warm_start_steps, args.warm_start_lr, args.seed, args.warm_start_batch_size
        )
    model.save_pretrained(args.out)
    print(f"[tiny_model] wrote {args.out}: {json.dumps(summary)}")


if __name__ == "__main__":
    main()
