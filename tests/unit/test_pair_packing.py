"""Packed pairs: the prompt once, the answers apart, every trained token scored as in its own padded row."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from engine import objectives
from engine.config import Config
from engine.data.render import SECOND, TRAINED
from engine.objectives.pair_packing import attention_mask, pack_pairs, segment, split_packed
from engine.objectives.preference import collate_pairs, sequence_logps


def _pair(prompt: list[int], chosen: list[int], rejected: list[int], tail: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A cached pair: prompt + chosen (trained), then prompt + rejected (trained, flagged SECOND)."""
    ids = prompt + chosen + [tail] * bool(tail) + prompt + rejected
    flags = ([0] * len(prompt) + [TRAINED] * len(chosen) + [0] * bool(tail) + [SECOND] * len(prompt)
             + [SECOND | TRAINED] * len(rejected))
    return np.array(ids, dtype=np.int64), np.array(flags, dtype=np.uint8)


def test_a_segment_holds_the_prompt_once_and_drops_what_follows_the_last_trained_token() -> None:
    seg = segment(*_pair([5, 6, 7], [8, 9], [10], tail=11))
    assert seg.prompt.tolist() == [5, 6, 7]
    assert [ids.tolist() for ids, _ in seg.answers] == [[8, 9], [10]]
    assert seg.lengths == (6, 4) and seg.size == 6


def test_packed_rows_restart_positions_and_keep_the_answers_apart() -> None:
    batch = pack_pairs([_pair([5, 6, 7], [8, 9], [10]), _pair([4], [12], [13, 14])], pad_id=0, capacity=64)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10, 4, 12, 13, 14]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 3, 0, 1, 1, 2]]
    assert batch["target"].tolist() == [[-1, -1, -1, 0, 0, 2, -1, 1, 3, 3]]
    assert batch["source"].tolist() == [[-1, -1, -1, 2, 3, 2, -1, 6, 6, 8]]  # both answers follow column 2 / 6
    assert batch["sequence_lengths"].tolist() == [5, 2, 4, 3]
    mask = attention_mask(batch, None)[0, 0]
    assert mask[5].tolist() == [True, True, True, False, False, True, False, False, False, False]
    assert mask[4, :5].all() and not mask[6, :6].any()  # the second pair sees nothing of the first


def test_rows_hold_whole_segments_up_to_the_capacity() -> None:
    pairs = [_pair([5, 6], [7, 8], [9, 10]) for _ in range(3)]
    batch = pack_pairs(pairs, pad_id=0, capacity=13)
    assert tuple(batch["input_ids"].shape) == (2, 12)
    assert batch["segment"].tolist()[1] == [2] * 6 + [-1] * 6


def _model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32, attn_implementation="sdpa")


def _random_pairs(count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [_pair(rng.integers(4, 200, rng.integers(1, 9)).tolist(), rng.integers(4, 200, rng.integers(1, 7)).tolist(),
                  rng.integers(4, 200, rng.integers(1, 7)).tolist(), tail=3) for _ in range(count)]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_log_probs_equal_the_padded_ones(tiny_model_dir, attention) -> None:
    model = _model(tiny_model_dir)
    model.config._attn_implementation = attention
    pairs = _random_pairs(6, seed=1)
    with torch.no_grad():
        padded = sequence_logps(model, collate_pairs(pairs, 0))
        packed = sequence_logps(model, pack_pairs(pairs, 0, capacity=24))
    torch.testing.assert_close(packed[0], padded[0], rtol=1e-5, atol=1e-5)
    assert torch.equal(packed[1], padded[1])


def test_packed_batches_split_into_whole_pairs_give_the_same_loss_and_gradient(tiny_model_dir) -> None:
    from engine.train.oom import forward_backward

    model = _model(tiny_model_dir)
    config = Config()
    objective = objectives.load("simpo")(replace(config, preference=replace(config.preference, packing=True)))
    batch = objective.collate(_random_pairs(5, seed=2), 0)
    assert [objective.rows(piece) for piece in split_packed(batch, 2)] == [3, 2]
    results = []
    for splits in (1, 2, 5):
        model.zero_grad()
        loss, _ = forward_backward(objective, model, batch, splits, 1.0, lambda t: t.backward(), torch.enable_grad)
        results.append((float(loss), model.model.embed_tokens.weight.grad.clone()))
    for loss, grad in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-5)
        torch.testing.assert_close(grad, results[0][1], rtol=1e-4, atol=1e-6)


def test_the_probe_batch_is_the_objectives_own_batch_form() -> None:
    config = Config()
    ids = torch.randint(4, 100, (3, 20))
    packed = objectives.load("dpo")(config).probe_batch(ids)
    assert packed["sequence_lengths"].tolist() == [10] * 6 and int(packed["input_ids"].ne(0).sum()) == 60
    padded = objectives.load("dpo")(replace(config, preference=replace(config.preference, packing=False)))
    assert tuple(padded.probe_batch(ids)["input_ids"].shape) == (6, 10)
