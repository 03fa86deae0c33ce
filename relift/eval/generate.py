"""Generation backends: vLLM wherever it is installed (GPUs, and vLLM's CPU build), transformers batched
sampling elsewhere. `generate` returns, per prompt, (response text, response token count, stopped by EOS)."""

from __future__ import annotations

import hashlib
import importlib.util
import os


def render(tokenizer, messages: list[dict], template: str) -> str:
    if template == "no-system":
        messages = [m for m in messages if m["role"] != "system"]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def sample_seed(run_seed: int, file: str, row: int, sample: int) -> int:
    """The seed of one sample: its own, so that the samples of one row (and of a row repeated in a file) are
    independent draws, and the same on a rerun. 32 bits of SHA-256 over (run seed, file name, row, sample)."""
    digest = hashlib.sha256(f"{run_seed}:{os.path.basename(file)}:{row}:{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class HFGenerator:
    """transformers batched sampling (CPU without vLLM, or a GPU without vLLM)."""

    def __init__(self, model_path: str, device: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device).eval()
        self.device = device

    def generate(self, prompts: list[str], temperature: float, top_p: float, max_new_tokens: int,
                 seeds: list[int]):
        """One batch: the rows draw from one generator seeded by the first sample's seed."""
        torch = self.torch
        torch.manual_seed(seeds[0])
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        with torch.no_grad():
            output = self.model.generate(
                **encoded,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=top_p if temperature > 0 else None,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        results = []
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        for ids in output[:, encoded["input_ids"].shape[1]:].tolist():
            stop = next((i for i, t in enumerate(ids) if t in eos), None)
            tokens = ids[: stop + 1] if stop is not None else ids
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            results.append((text, len(tokens), stop is not None))
        return results


def _outputs(llm, prompts: list[str], temperature: float, top_p: float, max_new_tokens: int, seeds: list[int]):
    from vllm import SamplingParams

    params = [SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed)
              for seed in seeds]
    return [(o.outputs[0].text, len(o.outputs[0].token_ids), o.outputs[0].finish_reason == "stop")
            for o in llm.generate(prompts, params, use_tqdm=False)]


def _llm(model_path: str, tensor: int, device: str):
    from vllm import LLM

    if device == "cpu":  # vLLM's CPU build: its fast kernels are fp32, CUDA graphs are CUDA's
        return LLM(model=model_path, dtype="float32", enforce_eager=True)
    return LLM(model=model_path, tensor_parallel_size=tensor)


def _serve_copy(model_path: str, tensor: int, device: str, devices: str, connection) -> None:
    """One copy of the model in a process of its own, on the GPUs `devices`: answers (prompts, sampling)
    requests until it receives None."""
    os.environ["CUDA_VISIBLE_DEVICES"] = devices
    llm = _llm(model_path, tensor, device)
    connection.send("ready")
    while (request := connection.recv()) is not None:
        connection.send(_outputs(llm, *request))


class VLLMGenerator:
    """vLLM: every prompt of a call goes to vLLM at once (it schedules them), each sample with its own
    seed; `parallelism.data` copies of the model, each on `parallelism.tensor` GPUs of its own (in
    processes of their own when more than one), share the prompts."""

    def __init__(self, model_path: str, device: str, parallelism):
        if device == "cpu":
            from relift.cpu import vllm_cpu_env

            for name, value in vllm_cpu_env().items():
                os.environ.setdefault(name, value)
        self.parallelism = parallelism
        self.copies = []
        if parallelism.data == 1:
            self.llm = _llm(model_path, parallelism.tensor, device)
            self.tokenizer = self.llm.get_tokenizer()
            return
        import multiprocessing

        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        context = multiprocessing.get_context("spawn")  # vLLM's own processes need a fresh interpreter
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = visible.split(",") if visible else [str(i) for i in range(parallelism.tensor * parallelism.data)]
        for copy in range(parallelism.data):
            ours, theirs = context.Pipe()
            devices = ",".join(gpus[copy * parallelism.tensor : (copy + 1) * parallelism.tensor])
            # Not a daemon: vLLM starts processes of its own. A copy whose parent died reads EOF and ends.
            process = context.Process(target=_serve_copy,
                                      args=(model_path, parallelism.tensor, device, devices, theirs))
            process.start()
            self.copies.append((process, ours))
        for process, connection in self.copies:
            if connection.recv() != "ready":
                raise RuntimeError(f"a copy of the model did not start (process {process.pid})")

    def generate(self, prompts: list[str], temperature: float, top_p: float, max_new_tokens: int,
                 seeds: list[int]):
        if not self.copies:
            return _outputs(self.llm, prompts, temperature, top_p, max_new_tokens, seeds)
        share = -(-len(prompts) // len(self.copies))
        spans = [(start, start + share) for start in range(0, len(prompts), share)]
        for (start, end), (_, connection) in zip(spans, self.copies, strict=False):
            connection.send((prompts[start:end], temperature, top_p, max_new_tokens, seeds[start:end]))
        return [output for _, (_, connection) in zip(spans, self.copies, strict=False) for output in connection.recv()]

    def close(self) -> None:
        for process, connection in self.copies:
            connection.send(None)
            process.join(timeout=60)


def parallelism_for(model_path: str, device: str, tensor: int | None, data: int | None):
    """relift.eval.parallel's plan for this model on the visible GPUs (CPU: one copy; `data` copies when
    asked). Raises ValueError before any model is loaded when vLLM would refuse it."""
    from transformers import AutoConfig

    from relift.eval.parallel import Parallelism, plan

    if device == "cpu":
        return Parallelism(1, data or 1)
    import torch

    config = AutoConfig.from_pretrained(model_path)
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    from relift.checkpoints import parameter_count

    weight_bytes = parameter_count(model_path) * 2  # bf16, vLLM's default for these models
    result = plan(heads, kv_heads, torch.cuda.device_count(), tensor, weight_bytes,
                  torch.cuda.get_device_properties(0).total_memory)
    if data is not None:
        if data * result.tensor > torch.cuda.device_count():
            raise ValueError(f"--data-parallel-size {data} x tensor parallel size {result.tensor} is more than the "
                             f"{torch.cuda.device_count()} visible GPU(s)")
        result = Parallelism(result.tensor, data)
    return result


def make_generator(backend: str, model_path: str, tensor: int | None = None, data: int | None = None):
    """(generator, backend name). `auto`: vLLM wherever it is installed, else transformers."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if backend == "auto":
        backend = "vllm" if importlib.util.find_spec("vllm") else "hf"
    if backend == "hf":
        return HFGenerator(model_path, device), backend
    return VLLMGenerator(model_path, device, parallelism_for(model_path, device, tensor, data)), backend
