"""Which objective ``train-eval`` evaluates with, and its reference base, settled without torch."""

from __future__ import annotations

import pytest
from support import chat_records, fake_checkpoint, kto_records, preference_records, write_jsonl

from engine.api import Engine
from engine.errors import ConfigError, DataError
from engine.evaluation import eval_objective, reference_base
from engine.workspace import Workspace


@pytest.fixture
def files(tmp_path):
    text = tmp_path / "wiki.txt"
    text.write_text("Paris is the capital of France.\nTwo and two make four.\n")
    return {"pair": write_jsonl(tmp_path / "pairs.jsonl", preference_records(4, seed=1)),
            "unpaired": write_jsonl(tmp_path / "kto.jsonl", kto_records(4, seed=1)),
            "chat": write_jsonl(tmp_path / "chat.jsonl", chat_records(4, seed=1)), "text": text}


def run_folder(tmp_path, objective: str):
    """A run folder with a checkpoint of an ``objective`` run and an empty ``final/`` beside it."""
    run = tmp_path / "runs" / objective
    fake_checkpoint(run / "checkpoints" / "step-000002", "r1",
                    config={"training": {"objective": objective}})
    (run / "final").mkdir()
    return run


def test_the_data_shape_decides_when_nothing_else_does(tmp_path, files):
    model = tmp_path / "model"
    model.mkdir()
    found = {kind: eval_objective(model, path, None, None) for kind, path in files.items()}
    assert found == {"pair": "dpo", "unpaired": "kto", "chat": "sft", "text": "sft"}


def test_the_runs_objective_wins_when_it_reads_the_data(tmp_path, files):
    orpo, pretrain = run_folder(tmp_path, "orpo"), run_folder(tmp_path, "pretrain")
    assert eval_objective(orpo / "final", files["pair"], None, None) == "orpo"
    assert eval_objective(orpo / "checkpoints" / "step-000002", files["pair"], None, None) == "orpo"
    assert eval_objective(orpo / "final", files["chat"], None, None) == "sft"  # orpo does not read chat
    assert eval_objective(pretrain / "final", files["text"], None, None) == "pretrain"
    assert eval_objective(orpo / "final", files["pair"], None, "simpo") == "simpo"
    with pytest.raises(ConfigError, match="unknown objective 'nope'"):
        eval_objective(orpo / "final", files["pair"], None, "nope")


def test_reference_base_is_the_runs_base_then_model_path(tmp_path):
    run = tmp_path / "run"
    checkpoint = fake_checkpoint(run / "checkpoints" / "step-000004", "r1")
    meta = (checkpoint / "progress.json")
    meta.write_text(meta.read_text().replace('"run_id"', '"base_model": "/bases/tiny", "run_id"'))
    (run / "final").mkdir()
    assert reference_base(run / "final") == "/bases/tiny"
    assert reference_base(tmp_path, "/given") == "/given"
    assert reference_base(tmp_path) == ""


def test_data_of_another_kind_than_the_asked_objective_is_one_line_before_any_run(tmp_path, files):
    from engine.config import Config

    engine = Engine(Workspace(tmp_path / "ws"))
    model = tmp_path / "model"
    model.mkdir()
    with pytest.raises(DataError, match=r"chat.jsonl:1: training.objective = 'dpo' trains on preference pairs"):
        engine.evaluate(model, files["chat"], Config(), "dpo")
    with pytest.raises(DataError, match=r"pairs.jsonl:1: training.objective = 'kto' trains on unpaired"):
        engine.evaluate(model, files["pair"], Config(), "kto")
    assert engine.list_runs() == []
    engine.close()
