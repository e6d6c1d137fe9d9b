"""Sharded checkpoints (``engine.train.dcp_format``) written and read in one process, with no process group.

An FSDP group writes them through the same functions (tests/integration/test_distributed*.py); here
one process stands for a group of one, which is enough to check the layout, the damage checks,
the safe metadata reader, resuming into a fresh model and optimizer, and the one-process copy
that export, eval and chat read.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from engine.checkpoint_meta import check_checkpoint, is_sharded
from engine.config import LoraConfig, load_config
from engine.errors import UserError
from engine.train import dcp_format
from engine.train.checkpoint import TrainingProgress, load_trainer_state
from engine.train.model import apply_lora, load_model
from engine.train.optimizer import adamw


@dataclass
class GroupOfOne:
    """What ``save_sharded`` asks of a group, for one process."""

    lead: bool = True
    world: int = 1

    def barrier(self) -> None:
        pass


def _trained(model_dir: Path, adapter: bool, seed: int = 0):
    """A tiny model (LoRA over it, or all weights) after two optimizer steps, and its optimizer."""
    config = load_config(overrides=["training.learning_rate=1e-2"])
    torch.manual_seed(seed)
    model = load_model(model_dir, config)
    model.resize_token_embeddings(model.get_input_embeddings().weight.shape[0] + 2)
    if adapter:
        model = apply_lora(model, LoraConfig(r=4, dropout=0.0), new_tokens=[1])
    optimizer = adamw(model, config)
    for _ in range(2):
        ids = torch.randint(0, 100, (2, 12))
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model, optimizer, config


def _save(folder: Path, model, optimizer, adapter: bool) -> Path:
    state = {"optimizer": None, "scheduler": {}, "rng": {"torch": torch.get_rng_state()}}
    meta = {"run_id": "r", "base_model": "", "config": {}}
    return dcp_format.save_sharded(folder, model, optimizer, state, TrainingProgress(step=2), meta, GroupOfOne(),
                                   adapter)


@pytest.fixture(scope="module")
def adapter_checkpoint(tiny_model_dir, tmp_path_factory):
    model, optimizer, _ = _trained(tiny_model_dir, adapter=True)
    folder = _save(tmp_path_factory.mktemp("ckpt") / "step-000002", model, optimizer, adapter=True)
    return folder, model, optimizer


def test_a_sharded_checkpoint_holds_shards_and_the_files_of_a_checkpoint(adapter_checkpoint):
    folder = adapter_checkpoint[0]
    assert is_sharded(folder)
    assert sorted(p.name for p in (folder / "sharded").iterdir()) == [".metadata", "__0_0.distcp"]
    assert {"adapter_config.json", "progress.json", "trainer_state.pt", "sharded.json"} <= {
        p.name for p in folder.iterdir()}
    assert not list(folder.glob("*.safetensors"))
    assert not list(folder.parent.glob(".tmp-*")), "written in a temporary folder, then renamed"
    assert check_checkpoint(folder)["progress"]["step"] == 2
    assert load_trainer_state(folder)["optimizer"] is None, "the optimizer state is in the shards"


def test_a_damaged_shard_is_one_line_naming_it(adapter_checkpoint, tmp_path):
    import shutil

    folder = Path(shutil.copytree(adapter_checkpoint[0], tmp_path / "step-000002"))
    shard = folder / "sharded" / "__0_0.distcp"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(UserError, match=r"__0_0\.distcp: .* bytes, written as .*damaged"):
        check_checkpoint(folder)
    shard.unlink()
    with pytest.raises(UserError, match=r"__0_0\.distcp: missing"):
        check_checkpoint(folder)


def test_metadata_that_would_run_code_is_refused_unread(adapter_checkpoint, tmp_path):
    import shutil

    folder = Path(shutil.copytree(adapter_checkpoint[0], tmp_path / "step-000002"))
    witness = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (witness,))
    (folder / "sharded" / ".metadata").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(UserError, match=r"\.metadata: not checkpoint metadata"):
        dcp_format.SafeReader(folder / "sharded").read_metadata()
    assert not witness.exists()


def test_a_fresh_model_and_optimizer_resume_from_the_shards(adapter_checkpoint, tiny_model_dir):
    folder, trained, trained_optimizer = adapter_checkpoint
    model, optimizer, _ = _trained(tiny_model_dir, adapter=True, seed=1)  # every number must come from the shards
    want, got = _trainable(trained), dict(model.named_parameters())
    assert not all(torch.equal(got[n], p) for n, p in want.items())
    dcp_format.load_sharded(folder, model, optimizer, adapter=True)
    assert all(torch.equal(got[n], p) for n, p in want.items())
    states = [o.state_dict()["state"] for o in (optimizer, trained_optimizer)]
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][i][k], states[1][i][k]) for i in states[1] for k in states[1][i])


def _trainable(model) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("adapter", [True, False])
def test_the_one_process_copy_is_what_save_pretrained_writes(adapter, tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    from engine.train.model import save_options

    model, optimizer, _ = _trained(tiny_model_dir, adapter)
    folder = _save(tmp_path / "step-000002", model, optimizer, adapter)
    model.save_pretrained(str(tmp_path / "whole"), safe_serialization=True, **save_options(model))
    copy = dcp_format.one_process_copy(folder, tiny_model_dir if adapter else None, tmp_path / "copy")
    name = "adapter_model.safetensors" if adapter else "model.safetensors"
    got, want = load_file(str(copy / name)), load_file(str(tmp_path / "whole" / name))
    assert got.keys() == want.keys() and want
    assert all(torch.equal(got[k], want[k]) and got[k].dtype == want[k].dtype for k in want)
    assert (copy / ("adapter_config.json" if adapter else "config.json")).is_file()
