"""The layout of a trained response, in one place. Pure Python.

The prompt's generation prompt opens the think block (the "-think" chat templates end it with
`<think>\n`), so a response, and a demonstration as the supervised update trains it, is

    {reasoning}\n</think>\n\n{answer with a final \\boxed{...}}

and relift's reward grades what follows the first `</think>` (relift.reward). A demonstration is stored
with its own `<think>\n` at the start (`normalise_demonstration`), which `strip_think_prefix` drops when
the rendered prompt already opened the block.
"""

from __future__ import annotations

import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
# What a generation prompt that opens the think block ends with.
OPENED_THINK = THINK_OPEN + "\n"
BOXED = "\\boxed{"
# A tokenizer's special tokens written out as text: `<|im_end|>`, `<|endoftext|>`, DeepSeek's
# `<｜end▁of▁sentence｜>` (full-width bars), `</s>`. Trained as text, the student's tokenizer may read one as its
# own end of sequence or turn marker.
SPECIAL_TEXT = re.compile(r"<\|[^|<>\s]{1,64}\|>|<｜[^｜<>\s]{1,64}｜>|</s>")


def strip_think_prefix(rendered_prompt: str, demonstration: str) -> str:
    """Drop the demonstration's leading `<think>` tag and the whitespace around it when the rendered prompt
    already opened the think block (it ends with `<think>\\n`), whatever follows the tag: one think block."""
    body = demonstration.lstrip()
    if rendered_prompt.endswith(OPENED_THINK) and body.startswith(THINK_OPEN):
        return body[len(THINK_OPEN) :].lstrip()
    return demonstration


def boxed_span(text: str, limit: int | None = None) -> tuple[int, int] | None:
    """(start of the last `\\boxed{`, index of its closing brace), braces balanced; None if there is none or
    it does not close (within `limit` characters of its content)."""
    start = text.rfind(BOXED)
    if start < 0:
        return None
    opening = start + len(BOXED) - 1
    stop = len(text) if limit is None else min(len(text), opening + limit + 2)
    depth = 0
    for end in range(opening, stop):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return start, end
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` in text; None if there is none or it does not close."""
    span = boxed_span(text)
    return None if span is None else text[span[0] + len(BOXED) : span[1]]


def _untagged(text: str) -> str:
    return text.replace(THINK_OPEN, "").replace(THINK_CLOSE, "").strip()


_SPECIAL_END = re.compile(rf"(?:{SPECIAL_TEXT.pattern})\s*\Z")


def _without_special_end(text: str) -> str:
    while match := _SPECIAL_END.search(text):
        text = text[: match.start()]
    return text.rstrip()


def _squeezed(text: str) -> str:
    return " ".join(text.split())


def normalise_demonstration(content: str | None, reasoning: str | None = None,
                            final_answer: str | None = None) -> str | None:
    """`content` (and a chat server's separate `reasoning`) in the training layout, with exactly one think
    block whatever holds the tags. The reasoning is `reasoning` and the part of `content` before its last
    `</think>` (a part that repeats the other is kept once); the answer is what follows that `</think>`;
    every other think tag is dropped. Without `</think>` and without `reasoning`, all of `content` is
    reasoning. An answer without `\\boxed{}` gets "The final answer is $\\boxed{X}$.", X being `final_answer`
    (the source's own mark of its final answer, e.g. GSM8K's `#### 6`) or else the reasoning's last boxed
    answer. Special-token text (`SPECIAL_TEXT`) ending `content` or `reasoning` is dropped (a server that left
    its end of sequence in); anywhere else it makes the reply unusable. Returns None when there is no answer to
    box or the reply holds special-token text inside."""
    content, reasoning = _without_special_end(content or ""), _without_special_end(reasoning or "")
    if SPECIAL_TEXT.search(content) or SPECIAL_TEXT.search(reasoning):
        return None
    cut = content.rfind(THINK_CLOSE)
    if cut >= 0:
        parts, answer = [reasoning or "", content[:cut]], content[cut + len(THINK_CLOSE) :]
    elif reasoning and reasoning.strip():
        parts, answer = [reasoning], content
    else:
        parts, answer = [content], ""
    thought = ""
    for part in map(_untagged, parts):
        if _squeezed(part) in _squeezed(thought):
            continue  # empty, or the reasoning a server sent in both places
        thought = part if _squeezed(thought) in _squeezed(part) else f"{thought}\n\n{part}"
    answer = _untagged(answer)
    if last_boxed(answer) is None:
        boxed = final_answer or last_boxed(thought)
        if boxed is None:
            return None
        answer = (answer + "\n\n" if answer else "") + f"The final answer is $\\boxed{{{boxed}}}$."
    return f"{THINK_OPEN}\n{thought}\n{THINK_CLOSE}\n\n{answer}"


def layout_problem(text: str) -> str | None:
    """Why a demonstration is not in the training layout, or None: exactly one `</think>`, no `<think>` but
    one at its start (the prompt may open the block instead), and a `\\boxed{}` answer after `</think>`."""
    closes = text.count(THINK_CLOSE)
    if not closes:
        return "no `</think>`: the think block that the prompt opens is never closed (relift's reward scores 0)"
    if closes > 1:
        return f"{closes} `</think>`: more than one think block"
    if text.count(THINK_OPEN) > text.lstrip().startswith(THINK_OPEN):
        return "a `<think>` after the demonstration's start: more than one think block"
    if last_boxed(text.split(THINK_CLOSE, 1)[1]) is None:
        return "no `\\boxed{}` answer after `</think>`"
    return None


