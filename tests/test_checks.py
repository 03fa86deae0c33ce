"""relift.checks: size relations veRL or relift assert on after the workers are up, caught before Ray."""

import json
import os
import subprocess
import sys

import pytest
from helpers import composed

from relift.checkpoints import STATE_FILE, TRACKER_FILE, resume_state_missing
from relift.checks import config_problems, resume_problems, supervised_settings
from relift.main import run


@pytest.mark.parametrize("overrides", [(), ("device=cpu",), ("device=cpu", "toy=digits"), ("trainer.nnodes=2",),
                                       ("trainer.nnodes=2", "actor_rollout_ref.rollout.tensor_model_parallel_size=16"),
                                       ("actor_rollout_ref.actor.ulysses_sequence_parallel_size=2",)])
def test_shipped_configurations_pass(overrides):
    assert config_problems(composed(*overrides)) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # Any other size splits (relift.sft.micro_batching; test_sft.py).
        (("device=cpu", "relift.sft_micro_batch_size_per_gpu=0"),
         "relift.sft_micro_batch_size_per_gpu=0 must be at least 1 (or null: the actor's "
         "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu)"),
        (("relift.sft_trigger_size=12",),
         "relift.sft_trigger_size=12 must be a multiple of the data-parallel size 8"),
        (("actor_rollout_ref.actor.ppo_max_token_len_per_gpu=8192",),
         "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=8192 is below the longest supervised sequence, "
         "data.max_prompt_length + relift.max_target_len = 9216: set it to at least 9216"),
        (("trainer.use_v1=true",), "trainer.use_v1=true: relift subclasses veRL's v0 RayPPOTrainer"),
        # The GPU default cuts micro-batches by tokens: the key would change nothing (examples/ set it once).
        (("relift.sft_micro_batch_size_per_gpu=4",),
         "relift.sft_micro_batch_size_per_gpu=4 would be ignored: with actor_rollout_ref.actor.use_dynamic_bsz=true "
         "micro-batches are cut by tokens (actor_rollout_ref.actor.ppo_max_token_len_per_gpu=32768); "
         "set relift.sft_micro_batch_size_per_gpu=null, or use_dynamic_bsz=false"),
        # Found on two CPU ranks (the two-node run): the old log-probs died in prepare_micro_batches.
        (("device=cpu", "trainer.n_gpus_per_node=2", "relift.sft_micro_batch_size_per_gpu=4",
          "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=16"),
         "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=32 must divide the responses per GPU, "
         "data.train_batch_size x rollout.n / GPUs = 32 / 2 = 16 (use_dynamic_bsz=false): "
         "e.g. actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16"),
        # veRL would make 8 // 3 = 2 rollout replicas and leave two GPUs idle.
        (("actor_rollout_ref.rollout.tensor_model_parallel_size=3",),
         "actor_rollout_ref.rollout.tensor_model_parallel_size=3 (x data 1 x pipeline 1 = 3 GPUs per rollout replica) "
         "must divide trainer.n_gpus_per_node=8 (or be a multiple of it that divides the 8 GPUs): "
         "e.g. actor_rollout_ref.rollout.tensor_model_parallel_size=2"),
        (("actor_rollout_ref.rollout.tensor_model_parallel_size=16",),
         "actor_rollout_ref.rollout.tensor_model_parallel_size=16"),
        # Measured: torch's FSDP1 refuses CPU weights ("requires them to be on GPU") when the workers start.
        (("device=cpu", "actor_rollout_ref.actor.strategy=fsdp"),
         "actor_rollout_ref.actor.strategy=fsdp cannot run with trainer.device=cpu"),
        (("relift.teacher.enable=true", "relift.teacher.model=m"),
         "relift.teacher.base_url=None: an http(s) URL, e.g. http://127.0.0.1:8000/v1"),
        (("relift.teacher.enable=true", "relift.teacher.base_url=http://127.0.0.1:8000/v1"),
         "relift.teacher.model is empty: the served model's name"),
        (("relift.teacher.enable=true", "relift.teacher.base_url=http://h/v1", "relift.teacher.model=m",
          "relift.teacher.attempts=0"), "relift.teacher.attempts=0: at least 1"),
        (("relift.teacher.enable=true", "relift.teacher.base_url=http://h/v1", "relift.teacher.model=m",
          "relift.enable=false"), "relift.teacher.enable=true with relift.enable=false"),
    ],
)
def test_each_problem_is_one_line_with_keys_values_and_a_fix(overrides, expected):
    problems = config_problems(composed(*overrides))
    assert len(problems) == 1 and expected in problems[0], problems


# veRL 0.9.1's run-time size rules that its validate_config misses, most of them with dynamic batching on
# (relift/checks.py lists where veRL asserts each): one line each, and the value it suggests works.
@pytest.mark.parametrize(
    ("overrides", "expected", "fix"),
    [
        # The issue's example: 64 x 8 = 512 responses per mini-batch over 6 ranks (train_mini_batch).
        (("trainer.n_gpus_per_node=6", "data.train_batch_size=120", "relift.sft_trigger_size=120",
          "actor_rollout_ref.rollout.tensor_model_parallel_size=1"),
         "actor_rollout_ref.actor.ppo_mini_batch_size=64 must divide data.train_batch_size=120, and its 64 x "
         "rollout.n 8 = 512 responses must split over the data-parallel size 6: "
         "e.g. actor_rollout_ref.actor.ppo_mini_batch_size=60", "actor_rollout_ref.actor.ppo_mini_batch_size=60"),
        # A step's responses over the ranks: the log-prob and update dispatch, balance_batch.
        (("trainer.n_gpus_per_node=6", "actor_rollout_ref.actor.ppo_mini_batch_size=48", "relift.sft_trigger_size=96",
          "data.train_batch_size=100"),
         "data.train_batch_size=100 x actor_rollout_ref.rollout.n=8 = 800 responses per step must split over the "
         "data-parallel size 6 (trainer.n_gpus_per_node x trainer.nnodes): e.g. data.train_batch_size=96",
         "data.train_batch_size=96"),
        (("actor_rollout_ref.rollout.agent.num_workers=5",),
         "actor_rollout_ref.rollout.agent.num_workers=5 must divide the responses per step, data.train_batch_size x "
         "rollout.n = 128 x 8 = 1024 (the agent loop splits them evenly): "
         "e.g. actor_rollout_ref.rollout.agent.num_workers=4", "actor_rollout_ref.rollout.agent.num_workers=4"),
        (("actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=false",),
         "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=false must equal actor_rollout_ref.actor.use_dynamic_bsz="
         "true", "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true"),
        (("relift.enable=false", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=8192"),
         "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=8192 is below the longest RL sequence, "
         "data.max_prompt_length + data.max_response_length = 9216: set it to at least 9216",
         "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=9216"),
        (("actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=4096",),
         "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=4096 is below the longest RL sequence",
         "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=9216"),
        (("actor_rollout_ref.actor.use_kl_loss=true", "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=4096"),
         "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=4096 is below the longest RL sequence",
         "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=9216"),
        # Ulysses: a sequence spans 2 ranks, so the limit doubles and the data-parallel size halves.
        (("actor_rollout_ref.actor.ulysses_sequence_parallel_size=2",
          "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=4000"),
         "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=4000 (x Ulysses size 2) is below the longest supervised "
         "sequence, data.max_prompt_length + relift.max_target_len = 9216: set it to at least 4608",
         "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=4608"),
        (("actor_rollout_ref.actor.ulysses_sequence_parallel_size=2", "relift.sft_trigger_size=6"),
         "relift.sft_trigger_size=6 must be a multiple of the data-parallel size 4 (trainer.n_gpus_per_node x "
         "trainer.nnodes = 8 / Ulysses size 2): e.g. relift.sft_trigger_size=4", "relift.sft_trigger_size=4"),
        (("actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=3",),
         "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=3 must divide the 8 ranks: "
         "e.g. actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=2",
         "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=2"),
        (("actor_rollout_ref.actor.fsdp_config.fsdp_size=3",),
         "actor_rollout_ref.actor.fsdp_config.fsdp_size=3 must divide the 8 ranks, or be -1 (all of them)",
         "actor_rollout_ref.actor.fsdp_config.fsdp_size=-1"),
        # Rollout replicas: vLLM's data-parallel engines over nodes, MoE experts, pipeline stages.
        (("trainer.nnodes=3", "data.train_batch_size=192", "actor_rollout_ref.actor.ppo_mini_batch_size=48",
          "relift.sft_trigger_size=96", "actor_rollout_ref.rollout.tensor_model_parallel_size=3",
          "actor_rollout_ref.rollout.data_parallel_size=8"),
         "actor_rollout_ref.rollout.tensor_model_parallel_size=3 must divide trainer.n_gpus_per_node=8 when "
         "actor_rollout_ref.rollout.data_parallel_size=8 spans nodes: "
         "e.g. actor_rollout_ref.rollout.tensor_model_parallel_size=1",
         "actor_rollout_ref.rollout.tensor_model_parallel_size=1"),
        (("actor_rollout_ref.rollout.expert_parallel_size=4",),
         "actor_rollout_ref.rollout.expert_parallel_size=4 must equal tensor_model_parallel_size x data_parallel_size "
         "= 2 x 1: e.g. actor_rollout_ref.rollout.expert_parallel_size=2",
         "actor_rollout_ref.rollout.expert_parallel_size=2"),
        (("actor_rollout_ref.rollout.pipeline_model_parallel_size=2",),
         "actor_rollout_ref.rollout.pipeline_model_parallel_size=2: veRL 0.9.1's vllm rollout has no pipeline "
         "parallelism", "actor_rollout_ref.rollout.pipeline_model_parallel_size=1"),
    ],
)
def test_each_size_rule_is_one_line_and_its_fix_works(overrides, expected, fix):
    problems = config_problems(composed(*overrides))
    assert len(problems) == 1 and expected in problems[0], problems
    assert config_problems(composed(*overrides, fix)) == []


def test_dry_run_refuses_the_issue_example_in_one_line(tmp_path):
    """`DRY_RUN=1 GPUS_PER_NODE=6 bash examples/qwen2.5-math-7b.sh ...` passed before, and veRL asserted at the
    first actor update; the preflight refuses it before Ray, in one line among the others it finds (here the
    data file and the model are missing too)."""
    env = {**os.environ, "DRY_RUN": "1", "GPUS_PER_NODE": "6", "MODEL": "/nonexistent/model",
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "qwen2.5-math-7b.sh")
    # The script works from the repository's root: Hydra's run folder goes to the test's own.
    result = subprocess.run(["bash", script, "data.train_batch_size=120", "relift.sft_trigger_size=120",
                             "actor_rollout_ref.rollout.tensor_model_parallel_size=1", f"hydra.run.dir={tmp_path}"],
                            capture_output=True, text=True, env=env, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    refusal = [line for line in output.splitlines() if line.startswith("[relift] ") and "valid" not in line]
    assert refusal == [
        "[relift] 3 problems, nothing started:",
        "[relift] actor_rollout_ref.actor.ppo_mini_batch_size=64 must divide data.train_batch_size=120, and its 64 x "
        "rollout.n 8 = 512 responses must split over the data-parallel size 6: "
        "e.g. actor_rollout_ref.actor.ppo_mini_batch_size=60",
        "[relift] dataset/openr1.parquet: file not found",
        "[relift] actor_rollout_ref.model.path=/nonexistent/model: no Hugging Face model there (no config.json)",
    ], output[-3000:]
    assert "Traceback" not in output


def test_main_stops_before_ray():
    """relift.main's entry point, in this process (tests/test_preflight.py runs the command line)."""
    with pytest.raises(SystemExit) as refused:
        run(composed("device=cpu", "relift.sft_micro_batch_size_per_gpu=0"))
    assert "\n[relift] relift.sft_micro_batch_size_per_gpu=0 must be at least 1" in str(refused.value)


def test_a_resume_on_another_number_of_ranks_or_without_relifts_state_is_refused(tmp_path):
    """veRL's FSDP checkpoint holds one shard file per rank, named by the rank count that wrote it: on another
    count veRL would fail at load, after Ray, the workers and the model are up."""
    step = tmp_path / "global_step_40"
    (step / "actor").mkdir(parents=True)
    (step / "actor" / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 8}))
    (tmp_path / TRACKER_FILE).write_text("40")
    (step / STATE_FILE).write_text("{}")
    run = (f"trainer.default_local_dir={tmp_path}", "trainer.nnodes=1")
    assert resume_problems(composed(*run, "trainer.n_gpus_per_node=8")) == []
    [line] = resume_problems(composed(*run, "trainer.n_gpus_per_node=4"))
    assert line.startswith(f"{step}/actor holds the shards of 8 ranks and this run has 4 (trainer.n_gpus_per_node=4 "
                           "x trainer.nnodes=1)") and "resume on 8 GPUs" in line and "\n" not in line, line
    assert resume_problems(composed(*run, "trainer.n_gpus_per_node=4", "trainer.resume_mode=disable")) == []
    assert resume_problems(composed(*run, "trainer.n_gpus_per_node=4", "trainer.nnodes=2")) == []
    (step / STATE_FILE).unlink()
    missing = resume_state_missing(str(step / STATE_FILE))
    assert resume_problems(composed(*run, "trainer.n_gpus_per_node=8")) == [missing]
    assert resume_problems(composed(*run, "trainer.n_gpus_per_node=8", "relift.enable=false")) == []


def test_a_resume_from_a_folder_verl_could_not_load_is_refused(tmp_path):
    by_path = ("trainer.resume_mode=resume_path", "relift.enable=false")
    [line] = resume_problems(composed(*by_path, f"trainer.resume_from_path={tmp_path}"))
    assert line == f"trainer.resume_mode=resume_path needs trainer.resume_from_path=<run>/global_step_<N> (veRL's " \
                   f"assertion), not {tmp_path}"
    assert resume_problems(composed(*by_path)) == [line.replace(str(tmp_path), "None")]
    gone = tmp_path / "global_step_7"
    assert resume_problems(composed(*by_path, f"trainer.resume_from_path={gone}")) == [
        f"{gone} does not exist (trainer.resume_mode=resume_path): give a global_step_<N> folder a run saved, or "
        "trainer.resume_mode=disable to start afresh"]
    gone.mkdir()  # e.g. a copy that left out actor/
    [line] = resume_problems(composed(*by_path, f"trainer.resume_from_path={gone}"))
    assert line.startswith(f"{gone} holds no veRL FSDP actor checkpoint (no actor/fsdp_config.json)"), line
    (tmp_path / TRACKER_FILE).write_text("7")  # the latest checkpoint, as veRL's tracker names it
    assert resume_problems(composed(f"trainer.default_local_dir={tmp_path}", "relift.enable=false")) == [line]


def test_main_refuses_a_cluster_address_without_an_auth_mode(tiny, monkeypatch):
    """Ray turns token authentication on by itself only for a cluster it finds locally: with an explicit
    address the driver would retry for a minute and fail with "Failed to connect"."""
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.2:6379")
    config = composed("device=cpu", f"actor_rollout_ref.model.path={tiny['model']}",
                      f"data.train_files={tiny['train']}", f"data.val_files={tiny['val']}",
                      "trainer.total_training_steps=2")
    with pytest.raises(SystemExit, match="RAY_ADDRESS=127.0.0.2:6379 is set but RAY_AUTH_MODE is not"):
        run(config)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (("relift.replay.share=0.5", "relift.replay.taught_share=0.5"),
         "relift.replay.share=0.5 and relift.replay.taught_share=0.5 must be >= 0 and leave room for new "
         "demonstrations"),
        (("relift.replay.share=-0.1",), "relift.replay.share=-0.1 and relift.replay.taught_share=0.25 must be >= 0"),
        # 8 x 0.05 / 0.95 rounds to no replayed response: the share would silently do nothing.
        (("device=cpu", "toy=digits", "relift.replay.taught_share=0.05"),
         "relift.replay.taught_share=0.05 replays no response: its share of a batch of relift.sft_trigger_size=4 new "
         "demonstrations is below 1 (one per data-parallel rank)"),
        (("relift.replay.share=0.5", "relift.replay.pool_size=0"), "relift.replay.pool_size=0 must be positive"),
        (("relift.sft_loss.weighting=kl",), "relift.sft_loss.weighting=kl is not one of nll, chord, trust_region"),
        (("relift.sft_loss.trust_region_alpha=0",), "relift.sft_loss.trust_region_alpha=0 must be in (0, 1]"),
        (("relift.optim.warmup_updates=-1",), "relift.optim.warmup_updates=-1 must be >= 0"),
        (("relift.replay.taught_warmup_updates=-1",), "relift.replay.taught_warmup_updates=-1 must be >= 0"),
        (("relift.replay.anchor_decay_updates=-1",), "relift.replay.anchor_decay_updates=-1 must be >= 0"),
        (("relift.replay.anchor_weight=0.5",), "relift.replay.anchor_weight=0.5 must be >= 1"),
        (("relift.guard.window=0",), "relift.guard.window=0 must be >= 1 step"),
        (("relift.guard.max_rise=1.5",), "relift.guard.max_rise=1.5 must be in [0, 1] or null"),
    ],
)
def test_each_stabilizer_problem_is_one_line(overrides, expected):
    problems = config_problems(composed(*overrides))
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize(("overrides", "replayed"), [
    ((), (256, 128)),  # the defaults: 128 new demonstrations are a quarter of the batch
    (("relift.replay.share=0.5", "relift.replay.taught_share=0"), (128, 0)),  # dynamic batch sizes: any multiple of 8
    (("relift.replay.share=0.25", "relift.replay.taught_share=0"), (40, 0)),  # 128 / 3 = 42.7, down to 8 ranks
    (("device=cpu", "toy=digits"), (16, 12)),  # 4 new demonstrations: 32 sequences, one micro-batch
    (("device=cpu", "toy=digits", "trainer.n_gpus_per_node=2", "relift.replay.share=0.55",
      "relift.replay.taught_share=0"), (4, 0)),  # 4 x 0.55 / 0.45 = 4.9, down to a multiple of 2 ranks
    (("interleave=paper",), (0, 0)),
])
def test_replayed_responses_split_over_ranks(overrides, replayed):
    settings = supervised_settings(composed(*overrides))
    assert (settings.own, settings.taught) == replayed


def test_the_paper_is_one_switch_away():
    paper = composed("interleave=paper").relift
    assert paper.replay.share == paper.replay.taught_share == 0 and paper.replay.anchor_weight == 1
    assert paper.guard.max_rise is None and paper.optim.warmup_updates == 0
    assert paper.sft_loss.weighting == "nll" and paper.entropy_coeff == 0.001
