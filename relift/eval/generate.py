"""Generation backends: vLLM on GPUs, transformers batched sampling elsewhere. Each returns, per prompt,
(response text, response token count, stopped by EOS)."""

from __future__ import annotations


def render(tokenizer, messages: list[dict], template: str) -> str:
    if template == "no-system":
        messages = [m for m in messages if m["role"] != "system"]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class HFGenerator:
    """transformers batched sampling (CPU, or a GPU without vLLM)."""

    def __init__(self, model_path: str, device: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device).eval()
        self.device = device

    def generate(self, prompts: list[str], temperature: float, top_p: float, max_new_tokens: int, seed: int):
        """Returns per prompt (response text, response token count, stopped by EOS)."""
        torch = self.torch
        torch.manual_seed(seed)
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


class VLLMGenerator:
    def __init__(self, model_path: str, device: str):
        import torch
        from vllm import LLM

        self.llm = LLM(model=model_path, tensor_parallel_size=torch.cuda.device_count(), enforce_eager=True)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts, temperature, top_p, max_new_tokens, seed):
        from vllm import SamplingParams

        params = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed)
        outputs = self.llm.generate(prompts, params)
        return [(o.outputs[0].text, len(o.outputs[0].token_ids), o.outputs[0].finish_reason == "stop") for o in outputs]


def make_generator(backend: str, model_path: str):
    import importlib.util

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if backend == "auto":
        backend = "vllm" if device == "cuda" and importlib.util.find_spec("vllm") else "hf"
    return (VLLMGenerator if backend == "vllm" else HFGenerator)(model_path, device), backend
