"""ReLIFT's supervised update on one GPU: what the second AdamW costs in GPU memory, and what moving its
state to CPU memory between updates (relift.offload_sft_optimizer) saves and costs. Needs CUDA; no Ray,
no veRL, no vLLM: it runs relift's own supervised batch layout and loss (relift.sft) and state moves
(relift.offload) on a randomly initialised model of a real size, as one FSDP rank holding every
parameter would (fp32 master weights, bf16 autocast, like veRL's FSDP actor).

    python -m bench.gpu_sft_memory [--model qwen2.5-math-1.5b] [--demos 4] [--prompt-len 256] [--demo-len 1024]

Prints one JSON object: GPU memory after each phase, the supervised AdamW's bytes (expected: 8 bytes
per parameter), the seconds each move and each update takes, and checks that a round trip through CPU
memory leaves the state bit-identical and that the demonstration NLL falls over the updates.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bench.qwen_shapes import QWEN2_5
from relift.cli import HelpFormatter
from relift.offload import move_optimizer_state, state_bytes
from relift.sft import build_sft_batch, sft_loss

GIB = 2**30


def gib(n: float) -> float:
    return round(n / GIB, 3)


def timed(fn):
    torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    torch.cuda.synchronize()
    return result, time.perf_counter() - start


def supervised_step(model, optimizer, batch: dict[str, torch.Tensor]) -> float:
    """One supervised update: forward under bf16 autocast, token-mean NLL (relift.sft.sft_loss), step."""
    prompt_len = batch["prompts"].shape[1]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"], use_cache=False).logits
    response_logits = logits[:, prompt_len - 1 : -1].float()
    log_probs = torch.log_softmax(response_logits, dim=-1).gather(-1, batch["responses"].unsqueeze(-1)).squeeze(-1)
    mask = batch["response_mask"]
    loss, nll = sft_loss(log_probs, None, mask, global_num_tokens=float(mask.sum()), dp_size=1, entropy_coeff=0.0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(nll)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--model", choices=sorted(QWEN2_5), default="qwen2.5-math-1.5b")
    parser.add_argument("--demos", type=int, default=4, help="demonstrations in the supervised batch")
    parser.add_argument("--prompt-len", type=int, default=256)
    parser.add_argument("--demo-len", type=int, default=1024)
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--pageable", action="store_true", help="offload into pageable memory (no pinned buffers)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench.gpu_sft_memory needs a CUDA GPU")
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(**QWEN2_5[args.model], attn_implementation="sdpa")
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "model": args.model,
              "parameters": params, "pinned": not args.pageable, "weights_gib": gib(torch.cuda.memory_allocated())}

    generator = torch.Generator().manual_seed(1)
    prompts = [torch.randint(100, config.vocab_size, (args.prompt_len - i,), generator=generator).tolist()
               for i in range(args.demos)]
    demos = [torch.randint(100, config.vocab_size, (args.demo_len - 7 * i,), generator=generator).tolist()
             for i in range(args.demos)]
    layout = build_sft_batch(prompts, demos, eos_token_id=2, pad_token_id=0, max_target_len=args.demo_len)
    batch = {k: v.cuda() for k, v in layout.tensors.items()}

    # The RL optimizer, stepped once so that its moments exist, stays on the GPU as veRL keeps it.
    rl_optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    supervised_step(model, rl_optimizer, batch)
    report["after_rl_optimizer_gib"] = gib(torch.cuda.memory_allocated())

    sft_optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
    nlls, steps_s, to_gpu_s, to_cpu_s, resident, offloaded, peaks = [], [], [], [], [], [], []
    for update in range(args.updates):
        if update:
            _, seconds = timed(lambda: move_optimizer_state(sft_optimizer, "cuda"))
            to_gpu_s.append(seconds)
        torch.cuda.reset_peak_memory_stats()
        nll, seconds = timed(lambda: supervised_step(model, sft_optimizer, batch))
        nlls.append(nll)
        steps_s.append(seconds)
        peaks.append(gib(torch.cuda.max_memory_allocated()))
        resident.append(gib(torch.cuda.memory_allocated()))
        if update == 0:
            report["sft_state_gib"] = gib(state_bytes(sft_optimizer, "cuda"))
            before = {id(p): {k: v.to("cpu", copy=True) for k, v in s.items()} for p, s in sft_optimizer.state.items()}
        _, seconds = timed(lambda: move_optimizer_state(sft_optimizer, "cpu", pin=not args.pageable))
        to_cpu_s.append(seconds)
        offloaded.append(gib(torch.cuda.memory_allocated()))
        if update == 0:
            move_optimizer_state(sft_optimizer, "cuda")
            report["round_trip_bit_identical"] = all(
                torch.equal(before[id(p)][k], v.cpu()) for p, s in sft_optimizer.state.items() for k, v in s.items()
            )
            del before
            move_optimizer_state(sft_optimizer, "cpu", pin=not args.pageable)
    report.update({
        "expected_sft_state_gib": gib(8 * params),
        "gpu_gib_with_sft_state_resident": resident,
        "gpu_gib_with_sft_state_offloaded": offloaded,
        "saved_gib": round(resident[-1] - offloaded[-1], 3),
        "peak_gib_during_update": peaks,
        "update_s": [round(s, 3) for s in steps_s],
        "move_to_cpu_s": [round(s, 3) for s in to_cpu_s],
        "move_to_gpu_s": [round(s, 3) for s in to_gpu_s],
        "demonstration_nll": [round(x, 4) for x in nlls],
        "nll_falls": nlls[-1] < nlls[0],
        "sft_state_on_gpu_after_offload_gib": gib(state_bytes(sft_optimizer, "cuda")),
    })
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
