"""A model of real shape through the GPU path's code on CPU: what a 0.5M-parameter toy cannot catch (grouped-
query attention, head size 64, a 151,936-token vocabulary, the reference's long system prompt).

    python -m bench.real_shape --out FILE             # all 24 layers: more than 24 GiB on CPU
    python -m bench.real_shape --layers 4 --out FILE  # make bench-real-shape: ~8 minutes, 15 GiB on 2 cores

1. A randomly initialised Qwen2ForCausalLM of Qwen2.5-0.5B's configuration (bench/qwen_shapes.py: 14
   attention heads, 2 KV heads, head_dim 64, 24 layers, 494M parameters, tied embeddings), saved in bf16 as
   released, with a tokenizer of Qwen2.5's vocabulary built offline: byte-level BPE with Qwen's pre-tokenizer
   trained on the data's and the bundled benchmark's text, filled to 151,643 tokens with tokens no merge
   reaches, then Qwen's 22 special tokens at their ids (151,643 on); tokenizer_class Qwen2Tokenizer, so
   transformers loads it as it loads Qwen.
2. `examples/prepare_model.py` makes its "-think" variant (the template's generation prompt opens the think
   block), as a user prepares a base model.
3. `dataset/prepare_train.py` maps digit-task questions and worked solutions (relift/toy/digit_tasks.py) to the
   training schema with the reference's system prompt, with the model's tokenizer for its length filters.
4. `python -m relift.main device=cpu`: two ReLIFT steps through veRL's vLLM rollout and the FSDP2 actor; the
   random model solves nothing, so every question is hardest and the buffer's 4 demonstrations trigger a
   supervised update at the first step.

Prints and writes one JSON object: the shape, wall time (building, preparing, training), each step's
timings and relift's console lines, the peak memory of the whole process tree (proportional set size: shared
pages counted once) and of its largest process, a failure, and the run's checks. A bench target, never a test.

Memory on CPU: the actor holds fp32 weights, gradients and two AdamWs (~24 bytes a parameter: 12.9 GB for the
24 layers, measured) and vLLM its own copy, twice while veRL's sync reloads it (no sleep mode on CPU). On a
24 GiB machine the 24 layers ran their first step, the supervised update included, and ran out of memory in
the weight sync after it, with vLLM in fp32 and in bf16; with MALLOC_MMAP_THRESHOLD_=1048576 in the
environment the sync fit and step 2's RL update ran out (bench/README.md). `--layers` fewer keeps every
per-layer shape, the vocabulary and the prompts.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import shutil
import sys
import threading
import time

import pandas as pd
import psutil

from bench.qwen_shapes import BPE_TOKENS, CHAT_TEMPLATE, NOT_SPECIAL, PRE_TOKENIZER_PATTERN, QWEN2_5, SPECIAL_TOKENS
from relift.cli import HelpFormatter
from relift.data import write_text_atomic
from relift.toy.digit_tasks import TYPES, make_rows
from relift.toy.runs import read_metrics, run_logged

SHAPE = "qwen2.5-0.5b"
STEPS, BATCH, SAMPLES, DEMOS = 2, 4, 4, 4  # questions per step, responses per question, demonstrations per update
HOLDOUT = 6  # validation questions (data.val_files); the run does not validate
MAX_PROMPT, MAX_RESPONSE = 384, 64
GIB = 2**30
RAY_OOM = "killed due to memory pressure"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Settings a caller's environment may hold that change the memory a run holds (the result records them).
MEMORY_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "GLIBC_TUNABLES",
                      "LD_PRELOAD", "VLLM_CPU_KVCACHE_SPACE", "RAY_memory_usage_threshold")


def build_tokenizer(texts: list[str], out: str):
    """Qwen2.5's vocabulary layout (module docstring), saved to `out` and loaded back as transformers loads
    Qwen's; AssertionError if a special token is not at Qwen's id."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    def backend(model):
        tokenizer = Tokenizer(model)
        tokenizer.normalizer = normalizers.NFC()
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(PRE_TOKENIZER_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tokenizer.decoder = decoders.ByteLevel()
        return tokenizer

    trained = backend(models.BPE())
    trained.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=8192, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    learnt = json.loads(trained.to_str())["model"]
    vocab = dict(learnt["vocab"])
    vocab.update({f"<unreached_{i}>": i for i in range(len(vocab), BPE_TOKENS)})
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learnt["merges"]]
    full = backend(models.BPE(vocab=vocab, merges=merges))
    full.add_tokens([AddedToken(t, special=t not in NOT_SPECIAL, normalized=False) for t in SPECIAL_TOKENS])
    PreTrainedTokenizerFast(tokenizer_object=full, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                            chat_template=CHAT_TEMPLATE).save_pretrained(out)
    config_path = os.path.join(out, "tokenizer_config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["tokenizer_class"] = "Qwen2Tokenizer"
    write_text_atomic(config_path, json.dumps(config, indent=2))
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    assert ids == list(range(BPE_TOKENS, BPE_TOKENS + len(SPECIAL_TOKENS))), ids
    return tokenizer


def build_model_and_tokenizer(texts: list[str], out: str, seed: int, layers: int) -> tuple[int, int]:
    """Both into `out`; (parameters, tokenizer length)."""
    tokenizer = build_tokenizer(texts, out)
    return build_model(out, tokenizer, seed, layers), len(tokenizer)


def build_model(out: str, tokenizer, seed: int, layers: int) -> int:
    """The random model of SHAPE with `layers` layers in bf16 beside its tokenizer; returns its parameter count."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(**{**QWEN2_5[SHAPE], "num_hidden_layers": layers}, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


class PeakMemory:
    """Samples the proportional set size of this process's tree (Ray, its workers, vLLM) every `interval` s.
    When `log` shows that Ray's memory monitor killed workers (the run would then wait on them for good), it
    stops the training (SIGTERM to relift.main, which shuts its Ray down) and sets `out_of_memory`."""

    def __init__(self, log: str, interval: float = 2.0):
        self.log, self.interval, self.total, self.largest = log, interval, 0, (0, "")
        self.out_of_memory, self._read = False, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()

    def _log_says(self, text: str) -> bool:
        """Whether the lines the log gained since the last call hold `text`."""
        if not os.path.exists(self.log):
            return False
        with open(self.log, "rb") as f:  # bytes: a line still being written may end inside a character
            f.seek(self._read)
            new = f.read()
        self._read += len(new)
        return text.encode() in new

    def _run(self) -> None:
        root = psutil.Process()
        while not self._stop.wait(self.interval):
            sizes = []
            for process in root.children(recursive=True):
                try:
                    sizes.append((process.memory_full_info().pss, " ".join(process.cmdline()[:4]).strip()[:120]))
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.total = max(self.total, sum(size for size, _ in sizes))
            self.largest = max([self.largest, *sizes])
            if not self.out_of_memory and self._log_says(RAY_OOM):
                self.out_of_memory = True
                for process in root.children():
                    if "relift.main" in process.cmdline():
                        process.terminate()


def step_row(row: dict) -> dict:
    keys = ("step", "gen", "old_log_prob", "update_actor", "relift_sft", "update_weights")
    timing = {key: round(row.get(f"timing_s/{key}", 0.0), 1) for key in keys[1:]}
    return {"step": row["step"], "seconds": round(row["timing_s/step"], 1), **timing,
            "prompt_tokens": row["prompt_length/mean"], "response_tokens": row["response_length/mean"],
            "hardest": row["relift/hardest_in_batch"], "sft_updates": row["relift/sft_updates"],
            "sft_nll": row.get("relift/sft_nll")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", required=True, help="result JSON")
    parser.add_argument("--work", default="outputs/real-shape", help="where the model, data and run go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, default=QWEN2_5[SHAPE]["num_hidden_layers"],
                        help="fewer than Qwen2.5-0.5B's 24 keep every per-layer shape and need less memory")
    args = parser.parse_args(argv)
    work = os.path.abspath(args.work)
    shutil.rmtree(work, ignore_errors=True)
    start = time.time()

    frame = make_rows(None, STEPS * BATCH + HOLDOUT, TYPES, "train", args.seed, set())
    os.makedirs(work)
    raw = os.path.join(work, "questions.jsonl")
    with open(raw, "w") as f:
        for prompt, target, reward in zip(frame.prompt, frame.target, frame.reward_model, strict=True):
            f.write(json.dumps({"problem": prompt[-1]["content"], "solution": target[0]["content"],
                                "answer": reward["ground_truth"]}) + "\n")
    # The BPE learns from the bundled benchmark's prompts too (the reference's system prompt and competition
    # problems), so that a prompt takes about as many tokens as with Qwen's own tokenizer.
    bundled = pd.read_parquet(os.path.join(REPO, "dataset", "math_eval.parquet"), columns=["prompt"])
    texts = [m["content"] for prompt in [*bundled.prompt, *frame.prompt] for m in prompt]
    texts += [target[0]["content"] for target in frame.target]

    base, think = os.path.join(work, "qwen2.5-0.5b-random"), os.path.join(work, "qwen2.5-0.5b-random-think")
    # In a process of its own: what building holds (a 151,936-token vocabulary, the model) is returned to the
    # system before the training, which needs all of this machine's memory.
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        parameters, vocab = pool.submit(build_model_and_tokenizer, texts, base, args.seed, args.layers).result()
    built_s = time.time() - start
    run_logged([sys.executable, os.path.join(REPO, "examples", "prepare_model.py"), "--base", base, "--out", think])
    train, valid = os.path.join(work, "train.parquet"), os.path.join(work, "valid.parquet")
    run_logged([sys.executable, os.path.join(REPO, "dataset", "prepare_train.py"), "--input", raw, "--output", train,
                "--holdout", str(HOLDOUT), "--holdout-output", valid, "--tokenizer", think,
                "--max-prompt-length", str(MAX_PROMPT), "--max-target-len", str(MAX_RESPONSE)])
    prepared_s = time.time() - start - built_s

    metrics = os.path.join(work, "metrics.jsonl")
    command = [
        sys.executable, "-m", "relift.main", "device=cpu", f"actor_rollout_ref.model.path={think}",
        f"data.train_files={train}", f"data.val_files={valid}", f"data.train_batch_size={BATCH}",
        f"data.max_prompt_length={MAX_PROMPT}", f"data.max_response_length={MAX_RESPONSE}",
        f"actor_rollout_ref.rollout.n={SAMPLES}", f"actor_rollout_ref.actor.ppo_mini_batch_size={BATCH}",
        # One response of 151,936 logits a token per forward pass: the log-prob and update activations stay small.
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=1",
        # vLLM in bf16 halves its weights and the copy veRL's sync reloads beside them (2 + 2 GB in fp32 for all 24
        # layers, beside the actor's 12 GB; in 24 GiB both dtypes ran out of memory there, --layers 4 did not).
        "actor_rollout_ref.rollout.dtype=bfloat16",
        # Each bucket of the weight sync is a shared-memory buffer in host RAM (veRL's default: 2 GiB); the
        # largest tensor, the embedding, is 545 MB in fp32.
        "actor_rollout_ref.rollout.checkpoint_engine.update_weights_bucket_megabytes=640",
        f"relift.sft_trigger_size={DEMOS}", "relift.sft_micro_batch_size_per_gpu=1",
        f"relift.max_target_len={MAX_RESPONSE}", f"trainer.total_training_steps={STEPS}",
        "trainer.val_before_train=false", "trainer.test_freq=-1", "trainer.save_freq=-1", "trainer.logger=[file]",
        f"trainer.default_local_dir={work}/checkpoints", f"hydra.run.dir={work}/hydra",
    ]
    env = {**os.environ, "VERL_FILE_LOGGER_PATH": metrics, "PYTHONUNBUFFERED": "1"}
    log = os.path.join(work, "train.log")
    train_start, failure = time.time(), None
    with PeakMemory(log) as memory:
        try:
            run_logged(command, log_path=log, env=env)
        except SystemExit as error:
            failure = "out of memory: Ray's memory monitor killed workers" if memory.out_of_memory else str(error)
    train_s = time.time() - train_start
    rows = read_metrics(metrics) if os.path.exists(metrics) else []
    with open(log) as f:  # relift's console lines: a step whose metrics were never logged (a failed sync) has one
        progress = [line.split("[relift] ", 1)[1].strip() for line in f if "[relift] step" in line]
    steps = [step_row(r) for r in rows]
    result = {
        "shape": {"name": SHAPE, "parameters": parameters, "vocab": vocab, **QWEN2_5[SHAPE],
                  "num_hidden_layers": args.layers},
        "run": {"questions_per_step": BATCH, "responses_per_question": SAMPLES, "demos_per_update": DEMOS,
                "max_prompt_length": MAX_PROMPT, "max_response_length": MAX_RESPONSE},
        "build_s": round(built_s), "prepare_s": round(prepared_s), "train_s": round(train_s),
        # Ray's, the workers' and vLLM's start-up and the shutdown: the training's time outside its steps.
        "start_up_s": round(train_s - sum(s["seconds"] for s in steps)),
        "steps": steps,
        "peak_memory_gib": round(memory.total / GIB, 2),
        "largest_process": {"gib": round(memory.largest[0] / GIB, 2), "command": memory.largest[1]},
        "progress": progress,
        "failure": failure,
        "checks": {"steps": len(steps) == STEPS, "supervised_update": sum(s["sft_updates"] for s in steps) >= 1},
        "wall_s": round(time.time() - start),
        "environment": {k: os.environ[k] for k in MEMORY_ENVIRONMENT if k in os.environ},
    }
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if failure or not all(result["checks"].values()):
        raise SystemExit(f"[real_shape] failed: {failure or result['checks']}")


if __name__ == "__main__":
    main()
