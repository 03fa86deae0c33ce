"""relift.accounting: the three budgets of a run (demonstrations, optimizer steps, compute) and how the
stages of SFT->RL add up. Pure Python."""

import pytest

from relift.accounting import Account, combine


def test_flops_are_2n_a_token_forward_and_6n_a_token_trained():
    account = Account(parameters=1_000, tokens_generated=10, tokens_prefilled=30, tokens_scored=40,
                      tokens_in_rl_updates=40, tokens_in_sft_updates=5)
    assert account.flops == 2 * 1_000 * (10 + 30 + 40) + 6 * 1_000 * (40 + 5)
    assert Account(tokens_generated=10).flops == 0  # N unknown
    summary = account.summary()
    assert summary["flops"] == account.flops and summary["rl_updates"] == 0


def test_the_stages_of_sft_then_rl_add_up():
    sft = Account(arm="sft", steps=12, parameters=7, sft_updates=12, tokens_in_sft_updates=900, sft_tokens_trained=600,
                  demos_available=64, demos_used=64, wall_s=10.0)
    rl = Account(arm="rl", steps=5, parameters=7, rl_updates=10, tokens_generated=50, tokens_prefilled=80,
                 tokens_scored=130, tokens_in_rl_updates=130, demos_available=64, wall_s=20.0)
    total = combine("sft_rl", [sft, rl])
    assert (total.steps, total.rl_updates, total.sft_updates, total.parameters) == (17, 10, 12, 7)
    assert total.flops == pytest.approx(sft.flops + rl.flops)
    assert (total.demos_used, total.wall_s) == (64, 30.0)


def test_the_console_block_names_each_budget():
    lines = Account(arm="relift", steps=3, parameters=542_080, rl_updates=6, sft_updates=2,
                    tokens_in_rl_updates=1_000).lines()
    assert "  optimizer steps  RL 6, supervised 2" in lines
    assert "  compute          3.25e+09 FLOPs (2N a token forward, 6N a token trained; N = 542,080)" in lines


def test_a_summary_written_before_the_budgets_loads_with_zeros():
    account = Account()
    account.load_state_dict({"arm": "rl", "steps": 4, "tokens_generated": 9})  # an older relift's summary.json
    assert (account.steps, account.rl_updates, account.parameters, account.flops) == (4, 0, 0, 0)
