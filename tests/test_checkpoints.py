"""relift.checkpoints: the folder a resume loads, the checkpoints veRL keeps at once, what one checkpoint
weighs, and the refusal of a folder without room for them."""

import json
import os

import pytest
import torch
from helpers import HF_ROLLOUT, composed
from transformers import AutoModelForCausalLM, Qwen2Config
from verl.utils.checkpoint.checkpoint_manager import BaseCheckpointManager

from relift.checkpoints import (
    DiskPlan,
    checkpoints_at_peak,
    disk_plan,
    disk_problem,
    latest_step,
    nearest_existing,
    parameter_count,
    resume_folder,
)


def test_resume_folder_is_the_one_verl_loads(tmp_path):
    run = str(tmp_path / "run")
    config = composed("actor_rollout_ref.model.path=unused", f"trainer.default_local_dir={run}")
    assert latest_step(run) is None and resume_folder(config) is None  # nothing saved yet: a fresh start
    os.makedirs(run)
    with open(f"{run}/latest_checkpointed_iteration.txt", "w") as f:
        f.write("40")
    assert latest_step(run) == 40
    assert resume_folder(config) == f"{run}/global_step_40"
    assert resume_folder(composed("actor_rollout_ref.model.path=unused", f"trainer.default_local_dir={run}",
                                  "trainer.resume_mode=disable")) is None
    given = composed("actor_rollout_ref.model.path=unused", "trainer.resume_mode=resume_path",
                     "trainer.resume_from_path=elsewhere/global_step_20")
    assert resume_folder(given) == os.path.abspath("elsewhere/global_step_20")


@pytest.mark.parametrize("keep", [None, -1, 1, 2, 3])
@pytest.mark.parametrize(("save_freq", "steps"), [(20, 107), (20, 20), (5, 12), (-1, 50)])
def test_checkpoints_at_peak_follows_verls_rotation(tmp_path, keep, save_freq, steps):
    """veRL's own rotation (BaseCheckpointManager: rank 0 deletes before and after each save), run on
    real folders; the most that ever exist at once is what the disk plan counts."""
    manager = BaseCheckpointManager.__new__(BaseCheckpointManager)  # the rotation needs no process group
    manager.previous_saved_paths = []
    peak = 0
    for step in range(1, steps + 1):
        if save_freq > 0 and (step % save_freq == 0 or step == steps):  # veRL's fit(): and the last step
            manager.ensure_checkpoint_capacity(keep)
            os.makedirs(tmp_path / f"global_step_{step}")
            peak = max(peak, len(os.listdir(tmp_path)))
            manager.register_checkpoint(str(tmp_path / f"global_step_{step}"), keep)
    assert checkpoints_at_peak(save_freq, keep, steps) == peak


def test_parameter_count_of_the_published_qwen2_5_math_configs(tmp_path):
    """The published config.json hyperparameters of Qwen2.5-Math-7B and -1.5B; counts from their model cards."""
    shared = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "num_hidden_layers": 28,
              "max_position_embeddings": 4096, "rope_theta": 10000.0, "rms_norm_eps": 1e-6}
    models = {
        "7b": ({"hidden_size": 3584, "intermediate_size": 18944, "num_attention_heads": 28, "num_key_value_heads": 4,
                "vocab_size": 152064, "tie_word_embeddings": False}, 7_615_616_512),
        "1.5b": ({"hidden_size": 1536, "intermediate_size": 8960, "num_attention_heads": 12, "num_key_value_heads": 2,
                  "vocab_size": 151936, "tie_word_embeddings": True}, 1_543_714_304),
    }
    for name, (sizes, expected) in models.items():
        os.makedirs(tmp_path / name)
        (tmp_path / name / "config.json").write_text(json.dumps({**shared, **sizes}))
        assert parameter_count(str(tmp_path / name)) == expected


def test_one_checkpoint_weighs_what_torch_writes(tmp_path):
    """The plan's parts against the files torch and transformers write for a real model after an AdamW step
    (one rank: every shard is the whole tensor). Tied embeddings are stored once. Measured on a veRL FSDP2
    checkpoint of the CPU demo's model (542,080 parameters): model 2,184,676 B, optim 4,367,728 B, relift's
    supervised optimizer 4,368,068 B, HF safetensors 2,171,048 B (F32): 4, 8, 8 and 4 bytes per parameter."""
    model_dir = str(tmp_path / "model")
    AutoModelForCausalLM.from_config(Qwen2Config(
        hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=1000, tie_word_embeddings=True)).save_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters())
    model(input_ids=torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss.backward()
    optimizer.step()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    torch.save(optimizer.state_dict(), tmp_path / "optim.pt")
    model.save_pretrained(tmp_path / "hf")

    config = composed(f"actor_rollout_ref.model.path={model_dir}", "trainer.n_gpus_per_node=1",
                      "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
                      "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
                      f"trainer.default_local_dir={tmp_path}/run")
    plan = disk_plan(config, steps=100)
    written = {"weights": os.path.getsize(tmp_path / "model.pt"),
               "RL optimizer": os.path.getsize(tmp_path / "optim.pt"),
               "supervised optimizer": os.path.getsize(tmp_path / "optim.pt"),  # the same AdamW over the same weights
               "HF model": os.path.getsize(tmp_path / "hf" / "model.safetensors")}
    assert plan.parts.keys() == written.keys()
    for part, size in written.items():
        assert plan.parts[part] == pytest.approx(size, rel=0.02), part
    assert plan.checkpoints == 2 and plan.best_copies == 2  # save_freq 20, 2 kept; validation every 10 steps
    assert plan.needed == 2 * sum(plan.parts.values()) + 2 * plan.parts["weights"]
    os.makedirs(f"{tmp_path}/run/best_step_10")
    os.symlink("best_step_10", f"{tmp_path}/run/best")  # a resume next to its best: one more copy at most
    assert disk_plan(config, steps=100).best_copies == 1

    grpo = disk_plan(composed(f"actor_rollout_ref.model.path={model_dir}", "relift.enable=false",
                              "relift.save_best=false", f"trainer.default_local_dir={tmp_path}/run"), steps=100)
    assert grpo.parts.keys() == {"weights", "RL optimizer"} and grpo.best_copies == 0


def test_too_little_room_is_one_line_with_the_folder_and_the_bytes(tmp_path):
    folder = str(tmp_path / "not" / "yet")
    plan = DiskPlan(folder=folder, save_freq=20, keep=2, world_size=8, parameters=10, dtype="float32",
                    parts={"weights": 40, "RL optimizer": 80}, checkpoints=2, best_model=40, best_copies=2)
    assert plan.needed == 2 * 120 + 2 * 40
    assert disk_problem(plan, free=320) is None
    assert disk_problem(plan, free=319) == (
        f"trainer.default_local_dir={folder} needs 320 bytes (320 B: 2 checkpoint(s) of 120 B + the best model "
        f"2 x 40 B) but {tmp_path} has 319 bytes (319 B) free: set trainer.default_local_dir to a disk with room "
        "(or write less: trainer.save_freq=-1 keeps no checkpoint, relift.save_best=false no best model)"
    )
    assert nearest_existing(folder) == str(tmp_path)


@pytest.fixture(scope="module")
def inputs(tiny, tmp_path_factory):
    # ~1.4e14 parameters: petabytes a checkpoint, more than any disk holds
    huge = tmp_path_factory.mktemp("ckpt") / "huge-model"
    huge.mkdir()
    (huge / "config.json").write_text(json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 65536, "intermediate_size": 1,
        "num_hidden_layers": 1, "num_attention_heads": 64, "num_key_value_heads": 1, "vocab_size": 2**31,
        "tie_word_embeddings": True}))
    return {"train": tiny["train"], "val": tiny["val"], "huge": str(huge)}


def test_a_folder_without_room_is_refused_before_ray_in_one_line(inputs, tmp_path, capsys):
    from relift.main import run as main

    run = tmp_path / "not" / "there" / "yet"
    config = composed("device=cpu", f"actor_rollout_ref.model.path={inputs['huge']}",
                      f"data.train_files={inputs['train']}", f"data.val_files={inputs['val']}",
                      "trainer.total_training_steps=2", f"trainer.default_local_dir={run}",
                      HF_ROLLOUT)  # vLLM's CPU attention has no kernel for this model's head size
    with pytest.raises(SystemExit) as refused:
        main(config)
    line = str(refused.value)
    assert line.startswith(f"[relift] trainer.default_local_dir={run} needs ") and "\n" not in line, line
    assert f"but {tmp_path} has " in line and " bytes (" in line and "free: set trainer.default_local_dir" in line
    assert not run.exists() and "Ray" not in capsys.readouterr().out
