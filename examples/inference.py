"""Ask a trained checkpoint one question, through relift.eval's generator (vLLM where it is installed, else
transformers) and chat template, and print the response and the answer relift's grader would read.

    python examples/inference.py /path/to/checkpoint "What is 7 * 8?"
"""

import argparse

from relift.cli import HelpFormatter
from relift.eval.generate import make_generator, render
from relift.reward import extract_answer_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("model", help="a Hugging Face model folder (e.g. train_results/ReLIFT/<EXP>/best)")
    parser.add_argument("question", nargs="?", default="What is 7 * 8?", help="the question")
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--backend", choices=["auto", "vllm", "hf"], default="auto")
    args = parser.parse_args()
    generator, backend = make_generator(args.backend, args.model)
    prompt = render(generator.tokenizer, [{"role": "user", "content": args.question}], template="train")
    (text, tokens, stopped), = generator.generate([prompt], temperature=args.temperature, top_p=1.0,
                                                  max_new_tokens=args.max_new_tokens, seed=0)
    print(f"[{backend}] {tokens} tokens{'' if stopped else ' (cut at max tokens)'}\n{text}")
    print(f"\nanswer: {extract_answer_text(text, require_think=False).strip()}")


if __name__ == "__main__":
    main()
