"""The parts of a torchrun group that need no launcher: shares of batches, state keys, roles, flags."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.config import Config, load_config
from engine.data.render import SECOND, TRAINED
from engine.data.template import TokenizedSample
from engine.errors import ConfigError
from engine.launch.rank import RankInfo, lost_group, lost_reason
from engine.threads import ThreadBudget
from engine.train.distributed import Group, by_index, by_name, parity_note
from engine.train.feed import BatchFeed
from engine.train.shards import pieces, plan_config, share, slice_pieces

PAD = 0


def samples(count: int = 37) -> list[TokenizedSample]:
    sizes = np.random.default_rng(1).integers(3, 40, count).tolist()
    return [TokenizedSample(list(range(1 + i, 1 + i + n)), list(range(1 + i, 1 + i + n))) for i, n in enumerate(sizes)]


def config(packing: bool = False, batch_tokens: int = 0) -> Config:
    base = Config()
    return replace(base, training=replace(base.training, batch_size=3),
                   data=replace(base.data, packing=packing, pack_length=64, batch_tokens=batch_tokens,
                                prefetch_depth=1))


def test_share_splits_rows_contiguously() -> None:
    rows = list(range(7))
    assert [share(rows, r, 2) for r in range(2)] == [[0, 1, 2], [3, 4, 5, 6]]
    assert [share([9], r, 2) for r in range(2)] == [[], [9]]
    assert pieces(8, 4) == 2 and pieces(3, 4) == 1 and pieces(0, 4) == 1


@pytest.mark.parametrize(("packing", "batch_tokens"), [(False, 0), (True, 0), (False, 200)])
def test_rank_slices_make_up_the_global_batches(packing: bool, batch_tokens: int) -> None:
    """Two ranks' slices hold, between them, the rows one process gets with the doubled batch."""
    plain = config(packing, batch_tokens)
    whole = BatchFeed(samples(), plan_config(plain, 2), PAD, 100)
    ranks = [BatchFeed(samples(), plan_config(plain, 2), PAD, 100, shard=(r, 2)) for r in range(2)]
    assert whole.batches_per_epoch() == ranks[0].batches_per_epoch() == ranks[1].batches_per_epoch()
    for _ in range(whole.batches_per_epoch() + 2):  # into the next epoch
        one, parts = whole.next(), [feed.next() for feed in ranks]
        assert parts[0].state == parts[1].state == one.state, "the position is global"
        real = [p for p in parts if p.samples]
        assert sum(p.samples for p in parts) == one.samples
        assert sum(p.real_tokens for p in parts) == one.real_tokens
        ids = sorted(int(t) for p in real for t in p.inputs["input_ids"].flatten() if t != PAD)
        assert ids == sorted(int(t) for t in one.inputs["input_ids"].flatten() if t != PAD)
    for feed in (whole, *ranks):
        feed.close()


def test_a_rank_without_rows_gets_a_stand_in_of_weight_zero() -> None:
    lone = [TokenizedSample(list(range(1, 30)), list(range(1, 30)))]
    feeds = [BatchFeed(lone, config(), PAD, 100, shard=(r, 2)) for r in range(2)]
    first, second = (feed.next() for feed in feeds)
    assert (first.samples, first.real_tokens) == (0, 0)
    assert second.samples == 1 and torch.equal(first.inputs["input_ids"], second.inputs["input_ids"])
    for feed in feeds:
        feed.close()


def test_plan_config_multiplies_the_batch_or_the_token_budget() -> None:
    doubled = plan_config(config(batch_tokens=200), 2)
    assert (doubled.training.batch_size, doubled.data.batch_tokens) == (6, 400)
    assert plan_config(config(), 1) == config()


def test_optimizer_state_keys_round_trip() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    params = list(model.parameters())
    optimizer = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2]},
                                   {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}])
    model(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    state = optimizer.state_dict()
    named = by_name(state, model, optimizer)
    assert set(named["state"]) == {name for name, _ in model.named_parameters()}
    assert named["param_groups"][0]["params"] == ["0.weight", "2.weight"]
    back = by_index(named)
    assert back["param_groups"] == state["param_groups"]
    assert back["state"].keys() == state["state"].keys()
    assert all(torch.equal(back["state"][i]["exp_avg"], state["state"][i]["exp_avg"]) for i in state["state"])


def test_rank_roles_from_torchrun_environment() -> None:
    assert RankInfo.from_env({}) == RankInfo() and RankInfo().lead and not RankInfo().grouped
    info = RankInfo.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                              "GROUP_RANK": "1"})
    assert (info.rank, info.world, info.local_rank, info.local_world, info.node) == (3, 4, 1, 2, 1)
    assert info.grouped and not info.lead and not info.node_lead
    assert RankInfo.from_env({"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}).node_lead


def test_lost_group_errors_are_told_apart() -> None:
    gloo = RuntimeError("[gloo/transport/tcp/pair.cc:537] Read error: Connection reset by peer")
    assert lost_group(gloo)
    assert not lost_group(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not lost_group(ValueError("gloo"))


def test_ranks_on_one_machine_split_the_run_share() -> None:
    class NoRuns:
        def running_runs(self) -> list:
            return []
    budget = ThreadBudget("r", cores=4, ranks=2)
    planned = budget.recount(NoRuns())  # type: ignore[arg-type]
    assert planned.threads == 2 and "2 ranks" in planned.reason
    assert ThreadBudget("r", fixed=3, cores=4, ranks=2).recount(NoRuns()).threads == 3  # type: ignore[arg-type]


@pytest.mark.parametrize(("overrides", "key"), [
    (["distributed.nnodes=2", "distributed.node_rank=2", "distributed.master_addr='h'"], "distributed.node_rank"),
    (["distributed.nnodes=2"], "distributed.master_addr"),
    (["distributed.strategy='fsdp'", "training.method='qlora'"], "distributed.strategy"),
    (["distributed.master_port=70000"], "distributed.master_port"),
])
def test_bad_group_settings_name_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(overrides=overrides, env={})


def test_group_flags_set_the_distributed_keys(tmp_path) -> None:
    from llamahome_tui.cli import build_parser
    from llamahome_tui.commands import group_overrides

    args = build_parser().parse_args(["--no-ui", "train", "d.jsonl", "--nproc-per-node", "2", "--strategy", "fsdp",
                                      "--nnodes", "2", "--node-rank", "1", "--master-addr", "10.0.0.1",
                                      "--master-port", "29400"])
    assert group_overrides(args) == {"nproc_per_node": 2, "strategy": "fsdp", "nnodes": 2, "node_rank": 1,
                                     "master_addr": "10.0.0.1", "master_port": 29400}
    resume = build_parser().parse_args(["--no-ui", "train-resume", "r1", "--nproc-per-node", "1"])
    assert group_overrides(resume) == {"nproc_per_node": 1}
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
    result = subprocess.run([sys.executable, "-m", "llamahome_tui", "--no-ui", "--workspace", str(tmp_path / "ws"),
                             "train", str(data), "--nproc-per-node", "2", "--strategy", "fsdp", "--set",
                             "training.method=qlora"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "distributed.strategy = 'fsdp'" in result.stderr


def test_console_shows_world_size_and_each_rank() -> None:
    from engine.events import Resources
    from engine.launch.rank import group_label
    from llamahome_tui.widgets.run_feed import RunFeed
    from llamahome_tui.widgets.run_panels import gauges_text

    assert group_label({"world_size": 2, "strategy": "fsdp"}) == "2 ranks, fsdp"
    assert group_label({"precision": "fp32"}) == "" and group_label(None) == ""
    feed = RunFeed("r")
    feed.resources = Resources(cpu_percent=190.0, rss_mb=900.0, gpu_util=None, gpu_mem_mb=None,
                               ranks=[{"rank": 0, "pid": 1, "cpu_percent": 95.0, "rss_mb": 450.0},
                                      {"rank": 1, "pid": 2, "cpu_percent": 95.0, "rss_mb": 450.0}])
    text = gauges_text(feed).plain
    assert "r0 0.9 cores 450M" in text and "r1 0.9 cores 450M" in text


def test_each_rank_gets_a_stream_of_its_own_and_rank_0_keeps_its_own() -> None:
    """After the model is built every rank reseeds but rank 0 (its stream is a one-process run's)."""
    def draws(rank: int, step: int = 0) -> torch.Tensor:
        torch.manual_seed(42)
        Group(RankInfo(rank, 3)).own_stream(42, step)
        return torch.rand(4)

    torch.manual_seed(42)
    untouched = torch.rand(4)
    assert torch.equal(draws(0), untouched)
    streams = [draws(1), draws(2), draws(1, step=7)]
    assert torch.equal(draws(1), streams[0]), "deterministic"
    every = [untouched, *streams]
    assert all(not torch.equal(a, b) for i, a in enumerate(every) for b in every[i + 1:])


class _Dropouts(torch.nn.Module):
    """A model's dropout as the parity note sees it: LoRA's modules, its own modules, its attention's."""

    def __init__(self, lora: float, own: float, attention: float) -> None:
        super().__init__()
        self.lora_dropout = torch.nn.ModuleDict({"default": torch.nn.Dropout(lora)})
        self.resid = torch.nn.Dropout(own)
        self.config = type("Shape", (), {"attention_dropout": attention})()


@pytest.mark.parametrize(("model", "precision", "named"), [
    (_Dropouts(0.05, 0, 0), "bf16", ["lora.dropout = 0.05", "bf16", 'training.precision = "fp32"']),
    (_Dropouts(0, 0.1, 0), "fp32", ["the model's own dropout", "config.json"]),
    (_Dropouts(0, 0, 0.1), "fp32", ["the model's own dropout"]),
    (_Dropouts(0, 0, 0), "fp32", []),
])
def test_a_group_says_what_keeps_its_losses_from_equalling_one_process(model, precision, named) -> None:
    config = load_config(overrides=[f"lora.dropout={model.lora_dropout['default'].p}",
                                    f"training.precision={precision!r}"])
    note = parity_note(config, model)
    assert all(part in note for part in named), note
    assert bool(note) == bool(named)
    assert "\n" not in note


@pytest.mark.parametrize(("said", "reason"), [
    ("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:32443: "
     "Connection reset by peer. This is typically caused by a remote worker hanging or bugs in the application",
     "Read error [127.0.0.1]:32443: Connection reset by peer"),
    ("[../third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 30000ms for recv operation "
     "to complete\nException raised from recv at ...", "Timed out waiting 30000ms for recv operation to complete"),
    ("word " * 60, ("word " * 40).strip() + " …"),
    ("", "RuntimeError"),
])
def test_a_lost_rank_is_told_in_torch_words_without_its_source_file(said: str, reason: str) -> None:
    assert lost_reason(RuntimeError(said)) == reason


def test_slices_are_cut_alike_on_every_rank() -> None:
    """Only a run continued with fewer ranks than it started with cuts its slices, into pieces known to all ranks."""
    assert [slice_pieces(started, now) for started, now in ((1, 2), (2, 2), (3, 2), (4, 2), (8, 3), (4, 4))] == [
        1, 1, 2, 2, 3, 1]


class _Pairs:
    """Cached preference pairs as a dataset: a prompt, then the chosen and the rejected answer (flagged SECOND)."""

    def __init__(self, count: int = 23) -> None:
        rng = np.random.default_rng(3)
        self.rows = []
        for _ in range(count):
            prompt, chosen, rejected = (rng.integers(1, 90, n).tolist() for n in rng.integers(2, 9, 3))
            ids = prompt + chosen + prompt + rejected
            flags = [0] * len(prompt) + [TRAINED] * len(chosen) + [SECOND] * len(prompt) + [SECOND | TRAINED] * len(
                rejected)
            self.rows.append((np.array(ids, dtype=np.int64), np.array(flags, dtype=np.uint8)))
        self.lengths = np.array([len(ids) for ids, _ in self.rows], dtype=np.int32)

    def __len__(self) -> int:
        return len(self.rows)

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.rows[index]

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        ids, flags = self.rows[index]
        return ids, (flags & TRAINED) > 0


def test_packed_pairs_are_packed_from_each_rank_s_own_pairs() -> None:
    """A rank takes its slice of a global batch's pair indices, then packs those pairs alone: between them the
    ranks' packed batches hold the one process's pairs, whole, in its order."""
    from engine.objectives import make
    from engine.objectives.pair_packing import is_packed, pairs_in, segments_of

    plain = load_config(overrides=["training.objective='dpo'", "training.batch_size=3", "data.pack_length=40",
                                   "data.prefetch_depth=1"])
    collate = make(plain).batch_form()
    whole = BatchFeed(_Pairs(), plan_config(plain, 2), PAD, 100, collate=collate)
    ranks = [BatchFeed(_Pairs(), plan_config(plain, 2), PAD, 100, collate=collate, shard=(r, 2)) for r in range(2)]
    for _ in range(whole.batches_per_epoch() + 1):
        one, parts = whole.next(), [feed.next() for feed in ranks]
        assert is_packed(one.inputs) and all(is_packed(p.inputs) for p in parts)
        assert [pairs_in(p.inputs) for p in parts] == [p.samples for p in parts]
        mine = [s for p in parts for s in segments_of(p.inputs)]
        theirs = segments_of(one.inputs)
        assert [(s.prompt.tolist(), [a.tolist() for a, _ in s.answers]) for s in mine] == [
            (s.prompt.tolist(), [a.tolist() for a, _ in s.answers]) for s in theirs]
    for feed in (whole, *ranks):
        feed.close()
