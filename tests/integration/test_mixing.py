"""``[[data.sources]]``: sources mixed by weight (3:1 exactly per epoch, seeded), resumed exactly, and
counted and evaluated per source in the run history."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from support import chat_records, write_jsonl
from test_resume import _config, _losses, _recipe

from engine.config import Config, DataSource, config_to_dict
from engine.data.dataset import load_conversations, tokenize_all
from engine.data.mixing import Mixture, quotas
from engine.events import CheckpointSaved, Eval, Step
from engine.train.feed import SampleList
from engine.train.model import load_tokenizer
from engine.train.recipe import RecipeData


class Lengths:
    """A stand-in dataset: sample ``i`` is ``[i]`` (tells samples apart), its length ``1 + i % 3``."""

    def __init__(self, size: int, tag: int) -> None:
        self.tag, self.lengths = tag, np.array([1 + i % 3 for i in range(size)])

    def __len__(self) -> int:
        return len(self.lengths)

    def arrays(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return np.array([self.tag * 1000 + i]), np.array([True])


def epoch_samples(mixture: Mixture, epoch: int) -> list[int]:
    view = mixture.epoch(epoch)
    return [int(view.arrays(p)[0][0]) for p in range(len(view))]


def test_quotas_follow_the_weights_and_give_every_source_one() -> None:
    assert quotas([3, 1], 80) == [60, 20]
    assert quotas([1, 1, 1], 10) == [4, 3, 3]
    assert quotas([1000, 1], 10) == [9, 1]


def test_an_epoch_mixes_3_to_1_evenly_and_varies_the_sampled_subset() -> None:
    a, b = Lengths(30, 1), Lengths(50, 2)
    mixture = Mixture([a, b], [3.0, 1.0], ["a", "b"], seed=5)
    assert len(mixture) == 80 and mixture.counts == [60, 20]
    first = epoch_samples(mixture, 0)
    assert [s // 1000 for s in first[:8]] == [1, 1, 2, 1, 1, 1, 2, 1]
    assert sum(1 for s in first if s // 1000 == 1) == 60 and sum(1 for s in first if s // 1000 == 2) == 20
    for window in range(0, 80, 8):  # evenly spread: every 8 samples hold 6 of a and 2 of b
        assert sum(1 for s in first[window:window + 8] if s // 1000 == 2) == 2
    a_first = [s for s in first if s // 1000 == 1]
    assert sorted(set(a_first)) == [1000 + i for i in range(30)]  # a small source repeats, all of it
    b_seen = [{s for s in epoch_samples(mixture, e) if s // 1000 == 2} for e in (0, 1)]
    assert not b_seen[0] & b_seen[1]  # a large source is sampled without repeating the same subset
    assert epoch_samples(Mixture([a, b], [3.0, 1.0], ["a", "b"], seed=5), 1) == epoch_samples(mixture, 1)
    assert epoch_samples(Mixture([a, b], [3.0, 1.0], ["a", "b"], seed=6), 0) != first


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("sources")
    return (write_jsonl(folder / "sums.jsonl", chat_records(24, seed=11)),
            write_jsonl(folder / "more.jsonl", chat_records(8, seed=12)))


def _mixed_data(model_dir: Path, sources: tuple[Path, Path]) -> RecipeData:
    tokenizer = load_tokenizer(model_dir)
    parts = [SampleList(tokenize_all(tokenizer, load_conversations(path), "assistant", 128)) for path in sources]
    mixture = Mixture(parts, [3.0, 1.0], ["sums", "more"], seed=7)
    held = tokenize_all(tokenizer, load_conversations(sources[1]), "assistant", 128)[:8]
    return RecipeData(mixture, held, tokenizer.pad_token_id, eval_sets={"sums": parts[0], "more": held})


def test_resuming_after_a_source_changed_says_what_changed_in_words(tmp_path: Path) -> None:
    import json

    from engine.errors import UserError
    from engine.jobs import check_mixture

    before = Mixture([Lengths(58, 1), Lengths(58, 2)], [3.0, 1.0], ["chat", "multi"], seed=42)
    checkpoint = tmp_path / "step-000020"
    checkpoint.mkdir()
    (checkpoint / "progress.json").write_text(json.dumps({"progress": {}, "mixture": before.signature()}))
    assert check_mixture(before, checkpoint) == {"mixture": before.signature()}
    now = Mixture([Lengths(62, 1), Lengths(58, 2)], [3.0, 1.0], ["chat", "multi"], seed=42)
    with pytest.raises(UserError) as info:
        check_mixture(now, checkpoint)
    assert str(info.value) == (f"{checkpoint}: the data sources changed since this checkpoint (then chat 58 samples "
                               "(87 an epoch), multi 58 samples (29 an epoch); now chat 62 samples (90 an epoch), "
                               "multi 58 samples (30 an epoch)); the run cannot continue exactly, start a new one")


def test_a_mixed_run_stopped_and_resumed_matches_an_uninterrupted_one(tiny_model_dir, sources, tmp_path) -> None:
    config = _config("lora")
    data = _mixed_data(tiny_model_dir, sources)
    assert data.train.counts == [24, 8]  # 32 samples an epoch: 4 batches of 8 (2 a step), 10 steps 5 epochs

    whole: list = []
    straight = _recipe(config, tiny_model_dir, data, tmp_path / "a", whole)
    straight.setup()
    assert straight.train() == "finished"

    first_part: list = []
    first = _recipe(config, tiny_model_dir, data, tmp_path / "b", first_part)
    first.setup()
    emit = first.emit

    def stop_at_7(event):
        emit(event)
        if isinstance(event, Step) and event.step == 7:  # inside the fourth epoch of the mixture
            first.stop_requested = True
    first.emit = stop_at_7
    assert first.train() == "stopped"
    checkpoint = Path([e for e in first_part if isinstance(e, CheckpointSaved)][-1].path)
    second_part: list = []
    second = _recipe(config, tiny_model_dir, data, tmp_path / "b", second_part)
    second.setup(resume_from=checkpoint)
    assert second.train() == "finished"

    resumed = _losses(first_part) + _losses(second_part)
    torch.testing.assert_close(torch.tensor(resumed), torch.tensor(_losses(whole)), rtol=0, atol=1e-6)
    evals = [e for e in whole if isinstance(e, Eval)]
    assert {"loss_sums", "loss_more", "samples_sums", "samples_more"} <= evals[-1].metrics.keys()
    last = evals[-1].metrics  # eval at step 9: 18 batches of 8, four epochs and two batches
    assert last["samples_sums"] + last["samples_more"] == 8 * 18 and last["samples_sums"] >= 4 * 24
    second = evals[1].metrics  # step 6 (eval every 3 steps): 12 batches, three whole epochs: 3:1 exactly
    assert (second["samples_sums"], second["samples_more"]) == (3 * 24, 3 * 8)
    assert [e.metrics["samples_sums"] for e in evals] == [e.metrics["samples_sums"]
                                                          for e in first_part + second_part if isinstance(e, Eval)]


def test_the_worker_mixes_sources_from_the_config_and_records_them(tiny_model_dir, sources, tmp_path) -> None:
    from engine import jobs
    from engine.store import RunStore
    from engine.workspace import Workspace

    base = Config()
    mix = [DataSource(str(sources[0]), 3.0, name="sums"), DataSource(str(sources[1]), 1.0, name="more")]
    config = replace(base, model=replace(base.model, path=str(tiny_model_dir)),
                     data=replace(base.data, sources=mix, max_length=128, validation_split=0.25),
                     training=replace(base.training, max_steps=4, batch_size=6, precision="fp32", log_steps=1),
                     eval=replace(base.eval, steps=2, generate_samples=0, sample_steps=0))
    workspace = Workspace(tmp_path / "ws").ensure()
    store = RunStore(workspace.db_path)
    store.create_run("mix", "train", {**config_to_dict(config), "job": {"data": "", "eval_data": ""}},
                     str(tiny_model_dir), "", output_dir=str(workspace.run_dir("mix")))
    events: list = []
    metrics = jobs.train_job(store.get_run("mix"), workspace, events.append, lambda recipe: None)
    store.close()
    assert metrics["train_samples"] == 18 + 6  # 24 and 8 less a quarter held out each: 3:1 exactly
    assert (metrics["samples_sums"], metrics["samples_more"]) == (18, 6)  # 4 batches of 6: one epoch
    assert {"eval_loss_sums", "eval_loss_more"} <= metrics.keys()
    evals = [e for e in events if isinstance(e, Eval)]
    assert evals and evals[-1].metrics["loss_sums"] > 0 and evals[-1].metrics["loss_more"] > 0
