"""Compute accounting per run: what a run cost and what it used, comparable across ReLIFT, RL only,
SFT only and SFT->RL. Pure Python.

A run ends by writing `summary.json` in its run folder and printing the same numbers as one block.
The totals travel with the checkpoint, so a resumed run reports the whole run. Validation is not
counted: it is the same for every arm. Three budgets compare the arms: demonstrations used, optimizer
steps (RL and supervised apart) and compute, a token-based FLOP estimate (`Account.flops`) beside the
wall time.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from relift.cli import HelpFormatter


@dataclass
class Account:
    """Totals of one run. Times in seconds, tokens as counted by the loss masks."""

    arm: str = ""
    experiment: str = ""
    steps: int = 0
    device: str = "cuda"
    devices: int = 1
    wall_s: float = 0.0
    tokens_generated: int = 0
    """Response tokens sampled by RL rollouts."""
    rl_tokens_trained: int = 0
    sft_tokens_trained: int = 0
    """Supervised response tokens: demonstrations (and replayed responses for ReLIFT)."""
    sft_wall_s: float = 0.0
    """Wall time inside supervised updates (for SFT only: the whole run)."""
    sft_updates: int = 0
    demos_available: int = 0
    demos_used: int = 0
    parameters: int = 0
    """N, the model's parameters (relift.checkpoints.parameter_count); 0 when unknown."""
    rl_updates: int = 0
    """RL optimizer steps: actor.ppo_epochs x the step's mini-batches."""
    tokens_prefilled: int = 0
    """Prompt tokens the rollouts read, once per sampled response (no prefix cache assumed)."""
    tokens_scored: int = 0
    """Tokens of forward-only passes: the old log-probabilities veRL recomputes with the actor over every
    sequence (prompt and response)."""
    tokens_in_rl_updates: int = 0
    """Tokens (prompt and response) of the sequences RL updates ran forward and backward on, per epoch."""
    tokens_in_sft_updates: int = 0
    """Tokens (prompt and target) of the sequences supervised updates ran forward and backward on."""

    @property
    def flops(self) -> float:
        """Estimated FLOPs: 2N per token of a forward pass (each generated token, each prefilled prompt token,
        each scored token) and 6N per token of a forward and backward pass (each token of an RL or supervised
        update), the approximation of Kaplan et al. 2020 (arXiv 2001.08361, section 2.1). It leaves out
        attention's term, about 2 x layers x context x width per token, so it underestimates long sequences
        by the same rule for every arm. 0 when N is unknown."""
        forward = self.tokens_generated + self.tokens_prefilled + self.tokens_scored
        return 2.0 * self.parameters * forward + 6.0 * self.parameters * (
            self.tokens_in_rl_updates + self.tokens_in_sft_updates)

    @property
    def device_hours(self) -> float:
        return self.wall_s / 3600 * self.devices

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for field in dataclasses.fields(self):
            if field.name in state:
                setattr(self, field.name, state[field.name])

    @classmethod
    def from_summary(cls, summary: dict) -> Account:
        """The account a summary.json's fields describe (the derived ones are ignored)."""
        account = cls()
        account.load_state_dict(summary)
        return account

    def summary(self) -> dict:
        """What summary.json holds: the totals plus the derived hours and shares."""
        return {
            **self.state_dict(),
            "wall_hours": self.wall_s / 3600,
            "device_hours": self.device_hours,
            "sft_wall_share": self.sft_wall_s / self.wall_s if self.wall_s else 0.0,
            "demos_used_share": self.demos_used / self.demos_available if self.demos_available else 0.0,
            "flops": self.flops,
        }

    def lines(self) -> list[str]:
        """The console block: one line per kind of cost."""
        s = self.summary()
        return [
            f"[relift] compute for this run ({self.arm}, {self.steps} steps)",
            f"  wall time        {s['wall_hours']:.3f} h x {self.devices} {self.device} device(s) = "
            f"{s['device_hours']:.3f} {'GPU' if self.device == 'cuda' else self.device}-hours",
            f"  tokens           generated {self.tokens_generated:,} | trained: RL {self.rl_tokens_trained:,}, "
            f"supervised {self.sft_tokens_trained:,}",
            f"  supervised       {self.sft_updates} updates, {s['sft_wall_share']:.1%} of wall time",
            f"  optimizer steps  RL {self.rl_updates:,}, supervised {self.sft_updates:,}",
            f"  compute          {self.flops:.3g} FLOPs (2N a token forward, 6N a token trained; N = "
            f"{self.parameters:,})",
            f"  demonstrations   {self.demos_used:,} used of {self.demos_available:,} available "
            f"({s['demos_used_share']:.1%})",
        ]


def combine(arm: str, accounts: list[Account]) -> Account:
    """One account for consecutive stages of a run (SFT then RL): sums, the largest device count, and the
    demonstrations of the stage that used the most of them (the stages train on the same file)."""
    total = Account(arm=arm, devices=max(a.devices for a in accounts), parameters=max(a.parameters for a in accounts))
    for a in accounts:
        for name in ("steps", "wall_s", "tokens_generated", "rl_tokens_trained", "sft_tokens_trained", "sft_wall_s",
                     "sft_updates", "rl_updates", "tokens_prefilled", "tokens_scored", "tokens_in_rl_updates",
                     "tokens_in_sft_updates"):
            setattr(total, name, getattr(total, name) + getattr(a, name))
    total.demos_available = max(a.demos_available for a in accounts)
    total.demos_used = max(a.demos_used for a in accounts)
    return total


def load(path: str) -> Account:
    """An account from a summary.json (derived fields are ignored)."""
    with open(path) as f:
        return Account.from_summary(json.load(f))


def main(argv: list[str] | None = None) -> None:
    """python -m relift.accounting --arm sft_rl --out RUN/summary.json SFT/summary.json RL/summary.json"""
    import argparse

    from relift.data import write_text_atomic

    parser = argparse.ArgumentParser(description="One compute summary for consecutive stages of a run.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--arm", required=True)
    parser.add_argument("--out", required=True, help="the combined summary.json")
    parser.add_argument("stages", nargs="+", help="each stage's summary.json, in order")
    args = parser.parse_args(argv)
    total = combine(args.arm, [load(path) for path in args.stages])
    write_text_atomic(args.out, json.dumps(total.summary(), indent=2))
    print("\n".join(total.lines()))


if __name__ == "__main__":
    main()
