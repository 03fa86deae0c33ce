"""Ask a trained checkpoint one question: vLLM on a GPU, transformers on CPU.

    python examples/inference.py /path/to/checkpoint "What is 7 * 8?"
"""

import sys

from relift.eval.generate import make_generator, render
from relift.reward import extract_answer_text


def main() -> None:
    model, question = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "What is 7 * 8?"
    generator, backend = make_generator("auto", model)
    prompt = render(generator.tokenizer, [{"role": "user", "content": question}], template="train")
    (text, tokens, stopped), = generator.generate([prompt], temperature=0.6, top_p=1.0, max_new_tokens=1024, seed=0)
    print(f"[{backend}] {tokens} tokens{'' if stopped else ' (cut at max tokens)'}\n{text}")
    print(f"\nanswer: {extract_answer_text(text, require_think=False).strip()}")


if __name__ == "__main__":
    main()
