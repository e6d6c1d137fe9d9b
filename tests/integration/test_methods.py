"""Every training method on the tiny model: the loss falls, and a checkpoint reloads to the same eval loss."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from engine.config import Config
from engine.data.dataset import load_conversations, tokenize_all
from engine.events import CheckpointSaved, Log, Step
from engine.train import qat
from engine.train.methods import load_for_method, uses_adapter
from engine.train.model import load_tokenizer
from engine.train.recipe import FineTune, RecipeData

STEPS = 20
METHODS = {
    "lora": {"method": "lora"},
    "qlora-nf4": {"method": "qlora"},
    "qlora-8bit": {"method": "qlora", "bits": 8},
    "qat": {"method": "qat"},
    "qat-lora": {"method": "qat", "qat_lora": True},
    "full": {"method": "full", "lr": 3e-3},
    "lora-bf16": {"method": "lora", "precision": "bf16"},
}


def method_config(method: str, bits: int = 4, qat_lora: bool = False, lr: float = 2e-2, **training) -> Config:
    """A small config for ``method`` on the tiny model (group size 16 divides 64 and 128).

    fp32 unless asked otherwise: "auto" would pick bf16 on some machines and fp32 on others.
    """
    training.setdefault("precision", "fp32")
    config = Config()
    return replace(
        config,
        training=replace(config.training, method=method, max_steps=STEPS, batch_size=8, log_steps=1,
                         learning_rate=lr, warmup_steps=2, seed=3, **training),
        lora=replace(config.lora, r=8, alpha=16, dropout=0.0),
        quant=replace(config.quant, bits=bits),
        qat=replace(config.qat, group_size=16, fake_quant_after_n_steps=5, lora=qat_lora),
        checkpoint=replace(config.checkpoint, save_steps=1000, keep_last_n=0),
        eval=replace(config.eval, steps=0, generate_samples=0),
    )


def recipe_data(model_dir: Path, files: tuple[Path, Path]) -> RecipeData:
    """The chat files tokenized for the tiny model."""
    tokenizer = load_tokenizer(model_dir)
    train = tokenize_all(tokenizer, load_conversations(files[0]), "assistant", 96)
    held = tokenize_all(tokenizer, load_conversations(files[1]), "assistant", 96)
    return RecipeData(train, held, tokenizer.pad_token_id)


def new_recipe(config: Config, model_dir: Path, data: RecipeData, out: Path, events: list,
               resume: Path | None = None) -> FineTune:
    """A set-up recipe; from ``resume`` when given (weights from it for whole-model methods)."""
    weights = resume if resume is not None and not uses_adapter(config) else model_dir
    recipe = FineTune(config, load_for_method(weights, config), data, out, events.append)
    recipe.setup(resume_from=resume)
    return recipe


@pytest.mark.parametrize("name", list(METHODS))
def test_loss_falls_and_checkpoint_reloads(tiny_model_dir, chat_files, tmp_path, name):
    config, data = method_config(**METHODS[name]), recipe_data(tiny_model_dir, chat_files)
    events: list = []
    recipe = new_recipe(config, tiny_model_dir, data, tmp_path, events)
    assert recipe.train() == "finished"
    losses = [e.loss for e in events if isinstance(e, Step)]
    assert len(losses) == STEPS
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.1, losses
    eval_loss = recipe.evaluate()

    checkpoint = Path([e for e in events if isinstance(e, CheckpointSaved)][-1].path)
    assert (checkpoint / ("adapter_model.safetensors" if uses_adapter(config) else "model.safetensors")).is_file()
    reloaded = new_recipe(config, tiny_model_dir, data, tmp_path / "again", [], resume=checkpoint)
    assert reloaded.progress.step == STEPS
    assert reloaded.evaluate() == pytest.approx(eval_loss, abs=1e-6)


@pytest.mark.parametrize("with_lora", [False, True])
def test_qat_converts_and_saves_a_loadable_quantized_model(tiny_model_dir, chat_files, tmp_path, with_lora):
    from transformers import AutoModelForCausalLM

    config = method_config("qat", qat_lora=with_lora, max_grad_norm=1.0)
    config = replace(config, training=replace(config.training, max_steps=3))
    data = recipe_data(tiny_model_dir, chat_files)
    recipe = new_recipe(config, tiny_model_dir, data, tmp_path / "ckpt", [])
    recipe.train()
    fake_quant_loss = recipe.evaluate()
    recipe.model = qat.convert(recipe.model, config.qat)
    converted_loss = recipe.evaluate()
    qat.save_quantized(recipe.model, tmp_path / "final", config.qat)

    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "final"))
    assert type(loaded.model.layers[0].mlp.down_proj.weight).__name__ == "IntxUnpackedToInt8Tensor"
    recipe.model = loaded
    assert recipe.evaluate() == pytest.approx(converted_loss, abs=1e-5)
    assert converted_loss == pytest.approx(fake_quant_loss, abs=0.05)


def test_fp16_without_cuda_is_a_config_error(tiny_model_dir):
    from engine.errors import ConfigError

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=r"training\.precision = 'fp16': needs a CUDA GPU"):
        load_for_method(tiny_model_dir, method_config("lora", precision="fp16"))


def _oom_run(tiny_model_dir, chat_files, out: Path, oom_at_call: int | None, batch_size: int = 8):
    config = method_config("full", lr=3e-3, gradient_accumulation_steps=2)
    config = replace(config, training=replace(config.training, max_steps=5, batch_size=batch_size))
    events: list = []
    recipe = new_recipe(config, tiny_model_dir, recipe_data(tiny_model_dir, chat_files), out, events)
    forward, calls = recipe.model.forward, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == oom_at_call:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return forward(*args, **kwargs)
    recipe.model.forward = flaky
    return recipe, events


def test_injected_oom_retries_with_half_the_micro_batch(tiny_model_dir, chat_files, tmp_path):
    plain, plain_events = _oom_run(tiny_model_dir, chat_files, tmp_path / "a", None)
    plain.train()
    # forward call 5 is step 3's first micro-batch (2 per step); the retry runs in halves
    backed_off, events = _oom_run(tiny_model_dir, chat_files, tmp_path / "b", 5, batch_size=8)

    def losses(stream):
        return torch.tensor([e.loss for e in stream if isinstance(e, Step)])
    backed_off.train()
    torch.testing.assert_close(losses(events), losses(plain_events), rtol=0, atol=2e-5)
    assert [e.message for e in events if isinstance(e, Log) and "out of memory" in e.message] == [
        "out of memory at step 3: retrying with micro-batch 4 and gradient accumulation 4 (effective batch 16 "
        "unchanged)"]
    assert backed_off.progress.micro_batch_splits == 2
    assert backed_off.progress.tokens_seen == plain.progress.tokens_seen
    assert backed_off.progress.batch_in_epoch == plain.progress.batch_in_epoch


def test_oom_with_a_single_sample_is_one_clear_error(tiny_model_dir, chat_files, tmp_path):
    from engine.errors import UserError

    recipe, _ = _oom_run(tiny_model_dir, chat_files, tmp_path, 1, batch_size=1)
    with pytest.raises(UserError, match="out of memory at step 1 with a micro-batch of one sample"):
        recipe.train()


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_gradient_checkpointing_gives_the_same_losses(tiny_model_dir, chat_files, tmp_path, method):
    data, runs = recipe_data(tiny_model_dir, chat_files), []
    for checkpointing in (False, True):
        config = method_config(method, gradient_checkpointing=checkpointing)
        config = replace(config, training=replace(config.training, max_steps=3))
        events: list = []
        recipe = new_recipe(config, tiny_model_dir, data, tmp_path / str(checkpointing), events)
        recipe.train()
        runs.append(torch.tensor([e.loss for e in events if isinstance(e, Step)]))
        base = recipe.model.get_base_model() if hasattr(recipe.model, "get_base_model") else recipe.model
        assert base.is_gradient_checkpointing == checkpointing
    torch.testing.assert_close(runs[1], runs[0], rtol=0, atol=1e-5)
