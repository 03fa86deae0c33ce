"""Rule-based reward for math reasoning, in veRL's custom-reward signature.

    compute_score(data_source, solution_str, ground_truth, extra_info=None) -> {"score", "acc", ...}

The rule (the reference's reward version 3):
- the prompt already opened `<think>`, so the response must close it; the answer is the text after the
  first `</think>`. Without `</think>` the response scores 0 when `require_think` is on.
- math answers are graded by math-verify against the ground truth, in `$...$` unless it already is in one pair.
  Before math-verify, on both sides: thousands separators are removed from grouped numbers (`9{,}500`,
  `12\\,400`, `12 400`: one to three digits, then groups of exactly three; `2 3` is not grouped), and a number
  with a percent sign (`17.5%`, `17.5\\%`, `12.5 \\%`) also reads as the number without the sign and as the
  number divided by 100: an answer is right when one of its readings equals one of the ground truth's. So for
  ground truth `17.5%` the answers `17.5\\%`, `17.5`, `0.175` and `\\frac{7}{40}` are right, `50` is right for
  `50\\%`, and `50\\%` for 50 or 0.5. OlympiadBench's own judge is wider: it drops `%` and accepts x/100, x and
  100x for every number (`numerical_equal`, include_percentage); relift reads the two only where a sign is written.
- multiple-choice rows (a ground truth that is one option letter A-J, as in GPQA and ARC-c; or a digit
  1-9 on ARC-style rows numbered that way) are graded by the option label the response commits to. A label is
  an uppercase letter (or the digit) standing alone: nothing word-like before it, and after it the end of its
  phrase (punctuation, a closing bracket, `**`, `$`, the end of the line, a dash, or `is` / `because` / `since`,
  which cannot follow the words "A" and "I"), so no label is read out of a word ("Actually", "A lot", "I am",
  "Based on") or a number (`2.5`), and lowercase `a` is a word. The
  label read is the last one in the first of these forms that occurs:
  1. boxed: `\\boxed{C}`, `\\boxed{\\text{(C)}}`, `\\boxed{C) the option's text}`;
  2. after an answer phrase, `answer` / `choice` / `option` then a separator (`:`, `=`, `=>`, a dash, an
     arrow) or `is` / `be` / `was`, markup and an optional `option` between: `ANSWER: C`, `**Answer:** C`,
     `The answer is (C).`, `the correct choice is **C**`, `The correct answer is option C`, `Final answer - C`,
     `Answer: C) the option's text`;
  3. `option C` / `choice C`;
  4. a line that holds only the label: `C`, `**C**`, `(C)`, `$C$`;
  5. `(C)` or `**C**` anywhere.
  math-verify's own `StringExtractionConfig` is not used: it reads "I" out of "Answer: I think" and "A" out of
  "A lot", and misses `\\boxed{C}` and `(C)`.

Grading is bounded by the input, not by luck (an RL policy that collapses can answer a whole step with
pathological text): math-verify sees only the final `\\boxed{...}` of the answer, or its last
`ANSWER_CHARS` characters when nothing is boxed; a boxed answer longer than that, braces nested deeper
than `MAX_BRACE_DEPTH`, a power inside an exponent, an exponent or factorial too large to compute are
rejected (graded wrong, status `rejected`) before math-verify, because sympy would evaluate them in C,
where no timer can interrupt it. What is left runs in a grader process (`relift.grader`) within
`budget_s` (1 s), and the caller waits at most `timeout_s` before it kills and replaces the grader.
`RELIFT_GRADER_PROCESSES` sets the number of grader processes per process that grades (default: one
per usable CPU, at most 8).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from relift.config import trainer_yaml
from relift.grader import GraderFailed, GraderPool
from relift.layout import BOXED, THINK_CLOSE, boxed_span

# reward.custom_reward_function.reward_kwargs.timeout_s of relift_trainer.yaml, for callers outside the trainer.
DEFAULT_TIMEOUT_S = trainer_yaml().reward.custom_reward_function.reward_kwargs.timeout_s
DEFAULT_BUDGET_S = 1.0

# The bundled benchmarks' longest ground truth is 210 characters.
ANSWER_CHARS = 500
MAX_BRACE_DEPTH = 12
# 10^{10^{10}}, 10^10^10: sympy computes the inner power first (2^{2^n} stays symbolic and passes).
_NESTED_POWER = re.compile(r"\^\s*\{?\s*\d+\s*\^\s*\{?\s*\d")
_POWER = re.compile(r"(\d+)\s*\^\s*\{?\s*(\d+)")
MAX_POWER_DIGITS = 10**6
_FACTORIAL = re.compile(r"(\d+)\s*!")
MAX_FACTORIAL = 10**5
# (10^{10})!, 10^{10}!: the factorial of a power.
_POWER_FACTORIAL = re.compile(r"\^\s*(\{[^{}]*\}|\w+)\s*!|\([^()]*\^[^()]*\)\s*!")

_CHOICE_SOURCES = ("gpqa", "arc", "mmlu")
_LETTER = re.compile(r"^\s*\(?([A-J])\)?\s*$")
_DIGIT = re.compile(r"^\s*\(?([1-9])\)?\s*$")


def _choice_patterns(labels: str) -> list[re.Pattern]:
    """The forms of the final option label, most explicit first. labels: a regex class body, "A-J" or "1-9".

    No two adjacent quantifiers can take the same characters: the patterns run over the whole answer text,
    which a policy can fill with 100,000 spaces or stars."""
    # A label is never read out of a word or a number ("Actually", "A lot", "I am", "Based", "2.5"): nothing
    # word-like before it, and after it the end of its phrase.
    label = (rf"(?<![\w\\^.\-])([{labels}])(?=[ \t]*(?:$|\n|[)\]}}*$!?;]|[.,:：](?!\d)|['\"’](?![A-Za-z])"
             r"|\\[)\]])|[ \t]+(?:[-–—]|(?:is|because|since)\b))")
    markup = r"(?:[\s*_:(\[$]|\\[(\[]|\\(?:text|textbf|mathrm|mathbf)\{)*"
    line_markup = r"(?:[ \t*_(\[$>#]|\\[(\[]|\\(?:text|textbf|mathrm|mathbf)\{)*"
    # The answer phrase's separators: a colon, `=` or `=>`, a dash or an arrow (`Final answer - B`, `Answer -> B`).
    separator = r"(?:[:：]|=>?|[-–—]+>?|→)"
    answer_phrase = (r"\b(?i:answer|choice|option)(?:[\s*_]*" + separator
                     + r"|(?:[ ,']+[A-Za-z]+){0,6}?[ ,']+(?i:is|be|was)\b)")
    return [
        re.compile(r"\\boxed\{" + markup + label),  # \boxed{C}, \boxed{\text{(C) the option's text}}
        re.compile(answer_phrase + markup + rf"(?:(?i:option|choice|letter){markup})?" + label),  # Answer: **C**
        re.compile(r"\b(?i:option|choice)" + markup + label),  # option C
        re.compile(r"(?m)^" + line_markup + label + r"[)\].]?[ \t*_$]*(?:\\[)\]])?[ \t]*$"),  # a line that is only C
        re.compile(r"(?:\(|\*\*)" + label + r"(?:\)|\*\*)"),  # (C) or **C** anywhere
    ]


_LETTER_PATTERNS = _choice_patterns("A-J")
_DIGIT_PATTERNS = _choice_patterns("1-9")

# Thousands separators as LaTeX writes them (9{,}500, 12\,400) or as a space (12 400): one to three digits, then
# groups of exactly three, one separator throughout, the rule math-verify applies to `1 234` in plain text. A digit
# right after `^` or `_` starts no group (`x^2 100`), and `2 3` stays as it is (latex2sympy reads it as 2 + 3).
_GROUPED = re.compile(r"(?<![\d.^_])[1-9]\d{0,2}(?P<sep>\{,\}|\\,| )\d{3}(?:(?P=sep)\d{3})*(?!\d)")
# A number with a percent sign: 17.5%, 17.5\%, 12.5 \%, 5\,\%, 5\text{\%}.
_PERCENT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?:\s|\\[,;: ]|~)*(?:\\?%|\\text\{\s*\\?%\s*\})")
# A ground truth already in one pair of math delimiters is parsed as it is: wrapped again, `$$8 \%$$`, math-verify
# reads it only as a string.
_DELIMITED = re.compile(r"\s*\$\$?[^$]+\$\$?\s*")


def without_separators(text: str) -> str:
    """text with the thousands separators of its grouped numbers removed: `9{,}500`, `12\\,400`, `12 400` -> 9500,
    12400."""
    return _GROUPED.sub(lambda number: number.group(0).replace(number.group("sep"), ""), text)


def readings(text: str) -> list[str]:
    """The texts math-verify parses for one answer or ground truth: text itself, and where a number carries a
    percent sign, text with the sign dropped and text with the number divided by 100 (17.5\\% -> 17.5, 0.175)."""
    if not _PERCENT.search(text):
        return [text]
    return [text, _PERCENT.sub(r"\1", text), _PERCENT.sub(r"\\frac{\1}{100}", text)]


def gold_readings(ground_truth: str) -> list[str]:
    """The ground truth as math-verify parses it: in `$...$` (unless it already is), separators removed, and its
    percent readings."""
    gold = without_separators(ground_truth)
    return readings(gold if _DELIMITED.fullmatch(gold) else f"${gold}$")


def extract_answer_text(solution_str: str, require_think: bool = True) -> str | None:
    """The part of a response that is graded: after the first `</think>` (None if it is required but absent)."""
    if THINK_CLOSE in solution_str:
        return solution_str.split(THINK_CLOSE, 1)[1]
    return None if require_think else solution_str


def choice_label(data_source: str, ground_truth: str) -> str | None:
    """The option label (A-J, or 1-9 for ARC rows numbered that way) of a multiple-choice row, else None."""
    letter = _LETTER.match(ground_truth)
    if letter:
        return letter.group(1)
    digit = _DIGIT.match(ground_truth)
    if digit and any(name in data_source.lower() for name in _CHOICE_SOURCES):
        return digit.group(1)
    return None


def extract_choice(answer_text: str, numeric: bool = False) -> str | None:
    """The option the response commits to: the last match of the most explicit form that matches (module
    docstring), or None."""
    for pattern in _DIGIT_PATTERNS if numeric else _LETTER_PATTERNS:
        matches = pattern.findall(answer_text)
        if matches:
            return matches[-1]
    return None


def graded_slice(answer_text: str) -> str | None:
    """What math-verify sees: the last `\\boxed{...}` with its braces, else the last ANSWER_CHARS characters.
    None when the last boxed answer does not close within ANSWER_CHARS characters."""
    if BOXED not in answer_text:
        return answer_text[-ANSWER_CHARS:]
    span = boxed_span(answer_text, limit=ANSWER_CHARS)
    return None if span is None else answer_text[span[0] : span[1] + 1]


def rejection(answer: str) -> str | None:
    """Why a graded slice is not given to math-verify, or None."""
    depth = deepest = 0
    for char in answer:
        depth += {"{": 1, "}": -1}.get(char, 0)
        deepest = max(deepest, depth)
    if deepest > MAX_BRACE_DEPTH:
        return f"braces nested {deepest} deep"
    if _NESTED_POWER.search(answer):
        return "a power inside an exponent"
    if any(len(base) * int(exponent) > MAX_POWER_DIGITS for base, exponent in _POWER.findall(answer)):
        return "a power of more than a million digits"
    if _POWER_FACTORIAL.search(answer) or any(int(n) > MAX_FACTORIAL for n in _FACTORIAL.findall(answer)):
        return "a factorial too large to compute"
    return None


_GRADERS = GraderPool()
_reported_failure = False


def grade_math(answer_text: str, ground_truth: str, timeout_s: float = DEFAULT_TIMEOUT_S,
               budget_s: float = DEFAULT_BUDGET_S) -> tuple[bool, str, str]:
    """(correct, extracted answer, status) with status one of ok / rejected / timeout / error (the grader
    process failed: not the answer's fault)."""
    global _reported_failure
    answer = graded_slice(answer_text)
    if answer is not None:
        answer = without_separators(answer)  # before the bounds, which must see 9^{999\,999\,999} whole
    if answer is None or rejection(answer) is not None:
        return False, "", "rejected"
    try:
        reply = _GRADERS.verify(readings(answer), gold_readings(ground_truth), budget_s=budget_s, timeout_s=timeout_s)
    except TimeoutError:
        return False, "", "timeout"
    except GraderFailed as error:
        if not _reported_failure:  # once per process: the trainer stops if a whole step fails
            print(f"[relift] grader process failed: {error}", file=sys.stderr, flush=True)
            _reported_failure = True
        return False, "", "error"
    return reply["correct"], reply["extracted"], reply["status"]


@dataclass
class Grade:
    correct: bool
    extracted: str
    """The answer the grader read: an option label, or math-verify's parse of the answer text."""
    has_think_close: bool
    status: str
    """ok, no_think (no `</think>` while it is required), rejected, timeout or error (grader failure)."""


def grade(data_source: str, response: str, ground_truth: str, require_think: bool = True,
          timeout_s: float = DEFAULT_TIMEOUT_S) -> Grade:
    """Grade one response: the rule shared by the training reward and evaluation."""
    has_think_close = THINK_CLOSE in response
    answer_text = extract_answer_text(response, require_think)
    if answer_text is None:
        return Grade(False, "", has_think_close, "no_think")
    gold = choice_label(data_source, ground_truth)
    if gold is not None:
        extracted = extract_choice(answer_text, numeric=gold.isdigit()) or ""
        return Grade(extracted == gold, extracted, has_think_close, "ok")
    correct, extracted, status = grade_math(answer_text, ground_truth, timeout_s)
    return Grade(correct, extracted, has_think_close, status)


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict | None = None,
    require_think: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **_unused,
) -> dict:
    """veRL custom reward. `score` is the training reward (1 correct, 0 otherwise); `acc` the same as a float.

    Extra keys (veRL keeps them per response; relift's trainer sums all but the first per step): `has_think_close`,
    `timed_out`, `answer_rejected`, `sent_to_grader` (a math answer that went to a grader process),
    `grader_failed`.
    """
    result = grade(data_source, solution_str, ground_truth, require_think, timeout_s)
    return {
        "score": float(result.correct),
        "acc": float(result.correct),
        "has_think_close": float(result.has_think_close),
        "timed_out": float(result.status == "timeout"),
        "answer_rejected": float(result.status == "rejected"),
        "sent_to_grader": float(result.status in ("ok", "timeout", "error")
                                and choice_label(data_source, ground_truth) is None),
        "grader_failed": float(result.status == "error"),
    }


# compute_score's per-response flags -> per-step counts in the training metrics.
HEALTH_METRICS = {
    "sent_to_grader": "grader/answers",
    "timed_out": "grader/timeouts",
    "answer_rejected": "grader/rejected",
    "grader_failed": "grader/failures",
}


def grading_health(extra: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Counts of one step's responses per flag; keys another reward function does not return are left out."""
    return {name: int(np.sum(extra[key])) for key, name in HEALTH_METRICS.items() if key in extra}


def grading_stop(health: Mapping[str, int]) -> str | None:
    """Why a step must stop instead of training, from its `grading_health`: grading failed for every answer
    sent to the grader processes (every reward would be 0 and every question look hardest); None otherwise."""
    answers = health.get("grader/answers", 0)
    if answers and health.get("grader/failures", 0) == answers:
        return (f"grading failed for all {answers} answers sent to the grader processes (the reward workers' log "
                "above has the first error): stopping instead of training on rewards of 0")
    return None
