"""What a chat can load, listed from the run history and resolved from a typed name, and its settings (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.api import Engine, GenerationSettings
from engine.errors import UserError
from engine.workspace import Workspace


def model_folder(folder: Path) -> Path:
    """A folder that looks like a saved model with its tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "tokenizer.json").write_text("{}")
    return folder


def adapter_folder(folder: Path, base: Path, progress: dict | None = None) -> Path:
    """A folder that looks like a LoRA adapter over ``base``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    if progress is not None:
        (folder / "progress.json").write_text(json.dumps(progress))
    return folder


@pytest.fixture
def engine(tmp_path: Path):
    engine = Engine(Workspace(tmp_path / "ws"))
    yield engine
    engine.close()


def train_run(engine: Engine, run_id: str, base: Path, steps: tuple[int, ...] = (10, 20), final: bool = True) -> Path:
    """A finished training run with checkpoints (adapters over ``base``), a final folder and an export."""
    out = engine.workspace.run_dir(run_id)
    engine.store.create_run(run_id, "train", {}, "tiny", "/d.jsonl", output_dir=str(out))
    engine.store.update_run(run_id, status="finished")
    for step in steps:
        folder = adapter_folder(out / "checkpoints" / f"step-{step:06d}", base)
        engine.store.add_checkpoint(run_id, step, str(folder), None)
    if final:
        adapter_folder(out / "final", base)
    model_folder(out / "exports" / f"step-{steps[-1]:06d}-merged")
    (out / "exports" / ".tmp-half-written").mkdir()
    return out


def test_models_are_listed_newest_run_first_final_exports_then_checkpoints(engine, tmp_path):
    base = model_folder(tmp_path / "base")
    train_run(engine, "20260101-000000-aaaa", base, steps=(10,))
    newer = train_run(engine, "20260101-000100-bbbb", base)
    listed = [(m.run_id[-4:], m.kind, m.label) for m in engine.chat_models()]
    assert listed == [("bbbb", "final", "final"), ("bbbb", "export", "step-000020-merged"),
                      ("bbbb", "checkpoint", "step-000020"), ("bbbb", "checkpoint", "step-000010"),
                      ("aaaa", "final", "final"), ("aaaa", "export", "step-000010-merged"),
                      ("aaaa", "checkpoint", "step-000010")]
    assert engine.chat_models()[0].path == str(newer / "final")


def test_a_run_id_resolves_to_its_final_model_else_its_newest_checkpoint(engine, tmp_path):
    base = model_folder(tmp_path / "base")
    out = train_run(engine, "20260101-000000-aaaa", base)
    assert engine.chat_target("20260101-000000-aaaa") == out / "final"
    assert engine.chat_target(str(out / "checkpoints" / "step-000010")) == out / "checkpoints" / "step-000010"
    out2 = train_run(engine, "20260101-000100-bbbb", base, final=False)
    for folder in (out2 / "exports").iterdir():
        folder.rename(tmp_path / folder.name)
    assert engine.chat_target("20260101-000100") == out2 / "checkpoints" / "step-000020"


def test_a_bad_name_or_folder_is_one_line_naming_it(engine, tmp_path):
    with pytest.raises(UserError, match=r"^nope: no such model folder, checkpoint or run id"):
        engine.chat_target("nope")
    with pytest.raises(UserError, match=r"not a checkpoint, adapter or model folder"):
        engine.chat_target(str(tmp_path))
    lost = adapter_folder(tmp_path / "lost", tmp_path / "gone")
    with pytest.raises(UserError, match=r"lost: the adapter's base model '.*gone' is not a local model folder"):
        engine.chat_target(str(lost))


def test_an_adapter_whose_base_moved_loads_over_the_base_its_run_config_names(engine, tmp_path):
    from engine.chat_models import chat_source

    base = model_folder(tmp_path / "moved-base")
    folder = adapter_folder(tmp_path / "ckpt", tmp_path / "old-place",
                            progress={"run_id": "x", "progress": {}, "config": {"model": {"path": str(base)}}})
    source = chat_source(folder, engine.workspace.models_dir)
    assert source.adapter and source.base == base and source.tokenizer_dir == base


def test_generation_settings_are_checked_and_described():
    settings = GenerationSettings()
    assert settings.describe() == "max new tokens 128 · greedy (temperature 0)"
    changed = settings.with_value("temperature", "0.7").with_value("top_p", " 0.5").with_value("max_new_tokens", "64")
    assert changed.describe() == "max new tokens 64 · temperature 0.7 · top-p 0.5"
    assert changed.as_dict() == {"max_new_tokens": 64, "temperature": 0.7, "top_p": 0.5}
    for key, text, message in (("max_new_tokens", "0", "max_new_tokens = '0': expected a whole number in 1..4096"),
                               ("max_new_tokens", "1.5", "expected a whole number"),
                               ("top_p", "0", "top_p = '0': expected a number in 0.01..1"),
                               ("temperature", "hot", "temperature = 'hot': expected a number in 0..5"),
                               ("seed", "1", "unknown setting 'seed'")):
        with pytest.raises(UserError, match=message.replace(".", r"\.")):
            settings.with_value(key, text)
