"""Evaluate checkpoints on the bundled benchmarks: generate, grade, and print one table per model.

    python -m relift.eval run MODEL [MODEL ...] [--name NAME ...] [--data FILE ...] [--n 1] [--out results]
    python -m relift.eval compare results/*

One concept per module:
- `items`: benchmark rows -> samples to produce (each row's chat messages, `--n` samples per row);
- `generate`: prompts through the model's chat template with the generation prompt, the same as
  training (`--template no-system` drops the system message, as the reference's eval did), each sample
  with its own seed (run seed, file, row, sample); backend `auto` is vLLM wherever it is installed (GPUs,
  vLLM's CPU build), else transformers batched sampling;
- `parallel`: how vLLM spreads over the GPUs (tensor parallelism that fits the heads, copies for the rest);
- grading is `relift.reward.grade`, the training reward's rule (text after `</think>`, math-verify,
  option letters for multiple choice), bounded in time, in grader processes;
- `samples`: `<out>/<name>/samples.jsonl`, one line per sample, appended and fsynced as it is made
  (rerunning skips samples already there, a crash loses nothing written), `summary.json`, `table.md`; a
  sample whose grading failed (timeout, grader crash) is stored ungraded and graded again by the next run;
- `identity`: `<out>/<name>/run.json`, the model (path, a fingerprint of its weights) and the settings that
  change a sample; a run into a folder of another model or other settings is refused before any model
  loads. The default `<name>` is the model's folder, with its parents' while that is generic (`best`,
  `huggingface`, `global_step_N`), so two runs' `best` do not share one;
- `metrics`: per benchmark (= `data_source`) avg@k (mean correctness over samples and repeated rows),
  pass@k (unbiased estimator, k = samples per distinct question), mean response length in tokens
  (reasoning included), share cut at max tokens, share without `</think>`; averages over the paper's
  in-distribution (six math) and out-of-distribution (GPQA, ARC-c) benchmarks;
- `__main__`: the command line, which runs them in that order.
"""
