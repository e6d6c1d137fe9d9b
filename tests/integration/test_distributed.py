"""Training as a torchrun group, through the real launcher (gloo, 2 single-thread ranks on the CPU).

2 ranks x batch 4 must give the per-step losses of 1 process x batch 8 (the same global batches),
with DDP and with FSDP2; the group is one run in the history, its checkpoints read like a
one-process run's, and no process of it is left when it ends.
"""

from __future__ import annotations

import psutil
import pytest
from group_runs import (
    assert_close_losses,
    ended,
    events,
    grad_norms,
    group_config,
    group_processes,
    losses,
    reference,
    step_grad_norms,
    step_losses,
    wait_for,
)

from engine.api import Engine
from engine.events import Log, Resources, Runtime
from engine.workspace import Workspace

STEPS = 4


@pytest.fixture(scope="module")
def one_process(tiny_model_dir, chat_files, tmp_path_factory):
    """The reference: 1 process, batch 8 (the job a worker runs, in this process)."""
    workspace = Workspace(tmp_path_factory.mktemp("reference") / "ws")
    config = group_config(tiny_model_dir, f"training.max_steps={STEPS}", "training.batch_size=8")
    seen = reference(workspace, config, chat_files[0], chat_files[1])
    return step_losses(seen), step_grad_norms(seen)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_ranks_give_one_process_losses(strategy, one_process, tiny_model_dir, chat_files, tmp_path,
                                           monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("LLAMAHOME_MONITOR_S", "0.5")
    engine = Engine(Workspace(tmp_path / "ws"))
    config = group_config(tiny_model_dir, f"training.max_steps={STEPS}", "training.batch_size=4",
                          "distributed.nproc_per_node=2", f"distributed.strategy={strategy}")
    run_id = engine.start_training(chat_files[0], config, eval_data=chat_files[1])
    launcher = group_processes(engine, run_id)[0]
    assert ended(engine, run_id) == "finished", engine.get_run(run_id).error
    assert_close_losses(losses(engine, run_id), one_process[0])
    assert_close_losses(grad_norms(engine, run_id), one_process[1], rel=1e-4)  # Adam alone would hide a bad scale
    assert len(losses(engine, run_id)) == STEPS
    assert [r.id for r in engine.list_runs()] == [run_id], "a group is one run in the history"
    runtime = events(engine, run_id, Runtime)
    assert {(e.world_size, e.strategy, e.backend) for e in runtime if e.world_size} == {(2, strategy, "gloo")}
    per_rank = [e.ranks for e in events(engine, run_id, Resources) if e.ranks]
    assert per_rank and {r["rank"] for r in per_rank[-1]} == {0, 1}, "each rank's CPU and RAM are sampled"
    assert all(r["rss_mb"] > 50 for r in per_rank[-1])
    launcher.wait(timeout=30)
    assert not group_processes(engine, run_id), "no process of the group is left"
    last = engine.checkpoints(run_id)[-1].path
    _ranks_draw_their_own_random_numbers(last)
    final = engine.get_run(run_id).final_metrics
    _evaluates_like_the_run(final["final_path"], chat_files[1], tiny_model_dir, final["eval_loss"])
    if strategy == "fsdp":  # the last checkpoint holds the final weights, sharded: read like the gathered final/
        _is_sharded(last)
        assert any("checkpoints: sharded" in e.message for e in events(engine, run_id, Log))
        _exports_like(last, final["final_path"], tmp_path / "export")
        _evaluates_like_the_run(last, chat_files[1], tiny_model_dir, final["eval_loss"])
        _chats_with_the_final_weights(last, final["final_path"])


def _chats_with_the_final_weights(folder: str, final: str) -> None:
    """``chat`` loads the sharded checkpoint's adapter: the weights final/ holds."""
    from pathlib import Path

    import torch
    from safetensors.torch import load_file

    from engine.train.chat_model import load_chat_model

    loaded = load_chat_model(Path(folder), None, lambda said: None)
    assert loaded.description["kind"] == "adapter"
    weights = dict(loaded.model.named_parameters())
    saved = load_file(str(Path(final) / "adapter_model.safetensors"))
    lora = [k for k in saved if "lora_B" in k]
    assert lora and all(torch.equal(weights[k.replace(".weight", ".default.weight")], saved[k]) for k in lora)


def _is_sharded(folder: str) -> None:
    """Each rank wrote its own shard file; no weights were gathered into safetensors."""
    from pathlib import Path

    from engine.checkpoint_meta import check_checkpoint, is_sharded

    folder = Path(folder)
    assert is_sharded(folder)
    assert {p.name for p in (folder / "sharded").glob("*.distcp")} == {"__0_0.distcp", "__1_0.distcp"}
    assert not list(folder.glob("*.safetensors"))
    assert check_checkpoint(folder)["progress"]["step"] == STEPS


def _exports_like(folder: str, final: str, out) -> None:
    """train-export of the sharded checkpoint writes the adapter final/ (gathered) holds, tensor for tensor."""
    from pathlib import Path

    import torch
    from safetensors.torch import load_file

    from engine.config import Config
    from engine.train.export import export_checkpoint

    result = export_checkpoint(Path(folder), out, merge=False, config=Config())
    assert result["kind"] == "adapter"
    got, want = (load_file(str(Path(f) / "adapter_model.safetensors")) for f in (out, final))
    assert got.keys() == want.keys() and want
    assert all(torch.equal(got[k], want[k]) for k in want)


def _ranks_draw_their_own_random_numbers(folder: str) -> None:
    """Each rank's random stream (its dropout masks) is its own: ranks on one stream draw the same masks."""
    from pathlib import Path

    import torch

    from engine.train.checkpoint import load_trainer_state

    streams = [state["torch"] for state in load_trainer_state(Path(folder))["rank_rng"]]
    assert len(streams) == 2 and not torch.equal(streams[0], streams[1])


def _evaluates_like_the_run(folder: str, data, model_dir, eval_loss: float) -> None:
    """The group's final adapter, read the way train-eval reads one, scores the run's eval loss."""
    from pathlib import Path

    from engine.config import Config
    from engine.data.dataset import load_conversations, tokenize_all
    from engine.jobs import load_for_eval
    from engine.train.evaluate import evaluate_loss

    model, tokenizer = load_for_eval(Path(folder), Config())
    samples = tokenize_all(tokenizer, load_conversations(Path(data)), "assistant", 512)
    result = evaluate_loss(model, samples, 16, tokenizer.pad_token_id)
    assert result.loss == pytest.approx(eval_loss, rel=1e-5)


@pytest.mark.slow
def test_no_rank_is_left_when_the_launcher_dies(tiny_model_dir, chat_files, tmp_path, monkeypatch):
    """Killing torchrun itself: the ranks are told by the kernel (parent-death signal) and stop."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    engine = Engine(Workspace(tmp_path / "ws"))
    config = group_config(tiny_model_dir, "training.max_steps=5000", "training.batch_size=4",
                          "distributed.nproc_per_node=2")
    run_id = engine.start_training(chat_files[0], config, eval_data=chat_files[1])
    wait_for(lambda: losses(engine, run_id), "the first step")
    processes = group_processes(engine, run_id)
    processes[0].kill()
    gone, alive = psutil.wait_procs(processes[1:], timeout=60)
    assert not alive, f"ranks left behind: {alive}"
    assert ended(engine, run_id) in ("stopped", "crashed")


@pytest.mark.slow
def test_a_token_budget_matches_one_process_whatever_rows_the_slices_hold(tiny_model_dir, chat_files, tmp_path,
                                                                          monkeypatch):
    """With data.batch_tokens a slice holds as many rows as fit, a row more or less than the other rank's: cut into
    pieces of training.batch_size rows, the ranks ran unlike numbers of FSDP passes and the group hung."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = group_config(tiny_model_dir, "training.max_steps=6", "training.batch_size=1", "data.batch_tokens=1200")
    want = step_losses(reference(Workspace(tmp_path / "ref"), one, chat_files[0], chat_files[1]))
    engine = Engine(Workspace(tmp_path / "ws"))
    config = group_config(tiny_model_dir, "training.max_steps=6", "training.batch_size=1", "data.batch_tokens=600",
                          "distributed.nproc_per_node=2", "distributed.strategy=fsdp", "distributed.timeout_s=30")
    run_id = engine.start_training(chat_files[0], config, eval_data=chat_files[1])
    assert ended(engine, run_id) == "finished", engine.get_run(run_id).error
    assert_close_losses(losses(engine, run_id), want)
    assert len(losses(engine, run_id)) == 6
