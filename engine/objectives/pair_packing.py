"""Preference pairs packed without padding, each prompt computed once for both answers (imports torch).

A pair becomes one segment, ``[prompt | chosen answer | rejected answer]``: the tokens the two
sequences share up to the first trained token, then the rest of each sequence up to its last
trained token (what follows cannot change a log-probability). The rejected answer's position
ids restart where the prompt ends, and it attends to the prompt and to itself, never to the
chosen answer; no token attends outside its segment. The first token of each answer is
predicted from the prompt's last position, so every trained token is scored exactly as in its
own padded row. Segments fill rows in order, a new row when the next one does not fit
``capacity`` tokens: a batch of ``B`` pairs is a few rows whose tails alone are padding.

A packed batch holds ``input_ids`` and ``position_ids`` (rows x width), ``segment`` (the pair's
index in the batch, -1 on padding), ``side`` (0 prompt, 1 chosen, 2 rejected), ``target`` (the
sequence a trained token counts for: ``i`` for pair ``i``'s chosen side, ``B + i`` for its
rejected side; -1 elsewhere), ``source`` (the column whose logits predict that token) and
``sequence_lengths`` (the ``2B`` sequences' full lengths, for counting real tokens). The
attention mask (rows x 1 x width x width) is made from ``segment`` and ``side`` at each forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.data.render import SECOND, TRAINED

Side = tuple[np.ndarray, np.ndarray]
Inputs = dict[str, torch.Tensor]
PACKED_KEYS = ("segment", "side", "target", "source")


def split_pair(ids: np.ndarray, flags: np.ndarray) -> tuple[Side, Side]:
    """``((chosen ids, trained), (rejected ids, trained))`` of one cached pair."""
    second = np.flatnonzero(flags & SECOND)
    cut = int(second[0]) if len(second) else len(ids)
    trained = (flags & TRAINED) > 0
    return (ids[:cut], trained[:cut]), (ids[cut:], trained[cut:])


@dataclass
class Segment:
    """One pair as the shared prompt and the two answers (ids and trained flags)."""

    prompt: np.ndarray
    answers: tuple[Side, Side]
    lengths: tuple[int, int]
    """The chosen and rejected sequences' full lengths (prompt and untrained tail included)."""

    @property
    def size(self) -> int:
        """Tokens the segment takes in a row."""
        return len(self.prompt) + sum(len(ids) for ids, _ in self.answers)


def segment(ids: np.ndarray, flags: np.ndarray) -> Segment:
    """The segment of one cached pair."""
    sides = split_pair(np.asarray(ids, dtype=np.int64), np.asarray(flags))
    lengths = (len(sides[0][0]), len(sides[1][0]))
    kept = [_through_last_trained(*side) for side in sides]
    (chosen, chosen_trained), (rejected, rejected_trained) = kept
    shortest = min(len(chosen), len(rejected))
    differ = np.flatnonzero(chosen[:shortest] != rejected[:shortest])
    cut = min(int(differ[0]) if len(differ) else shortest, _first(chosen_trained), _first(rejected_trained))
    return Segment(chosen[:cut], ((chosen[cut:], chosen_trained[cut:]), (rejected[cut:], rejected_trained[cut:])),
                   lengths)


def _through_last_trained(ids: np.ndarray, trained: np.ndarray) -> Side:
    where = np.flatnonzero(trained)
    end = int(where[-1]) + 1 if len(where) else 0
    return ids[:end], trained[:end]


def _first(trained: np.ndarray) -> int:
    where = np.flatnonzero(trained)
    return int(where[0]) if len(where) else len(trained)


def pack_pairs(samples: Sequence[tuple[np.ndarray, np.ndarray]], pad_id: int, capacity: int) -> Inputs:
    """Cached pairs ``(ids, flags)`` packed into rows of at most ``capacity`` tokens (or the longest segment)."""
    return pack_segments([segment(ids, flags) for ids, flags in samples], pad_id, capacity)


def pack_segments(segments: Sequence[Segment], pad_id: int, capacity: int) -> Inputs:
    """Segments packed in order into rows (see the module docstring for the keys)."""
    rows: list[list[int]] = []
    used: list[int] = []
    for index, seg in enumerate(segments):
        if not rows or used[-1] + seg.size > capacity:
            rows.append([])
            used.append(0)
        rows[-1].append(index)
        used[-1] += seg.size
    shape = (len(rows), max(max(used, default=1), 1))
    arrays = {"input_ids": np.full(shape, pad_id, dtype=np.int64), "position_ids": np.zeros(shape, dtype=np.int64),
              **{key: np.full(shape, -1 if key != "side" else 0, dtype=np.int64) for key in PACKED_KEYS}}
    for row, members in enumerate(rows):
        column = 0
        for index in members:
            column = _place(arrays, row, column, index, segments[index], len(segments))
    inputs = {key: torch.from_numpy(value) for key, value in arrays.items()}
    lengths = [seg.lengths[0] for seg in segments] + [seg.lengths[1] for seg in segments]
    inputs["sequence_lengths"] = torch.tensor(lengths, dtype=torch.long)
    return inputs


def _place(arrays: dict[str, np.ndarray], row: int, column: int, index: int, seg: Segment, pairs: int) -> int:
    """Write pair ``index``'s segment into ``row`` from ``column``; the column after it."""
    prompt = len(seg.prompt)
    end = column + prompt
    arrays["input_ids"][row, column:end] = seg.prompt
    arrays["position_ids"][row, column:end] = np.arange(prompt)
    arrays["segment"][row, column:end] = index
    for which, (ids, trained) in enumerate(seg.answers):
        start, end = end, end + len(ids)
        cols = slice(start, end)
        arrays["input_ids"][row, cols] = ids
        arrays["position_ids"][row, cols] = np.arange(prompt, prompt + len(ids))
        arrays["segment"][row, cols] = index
        arrays["side"][row, cols] = which + 1
        source = np.arange(start - 1, end - 1)
        if len(ids):
            source[0] = column + prompt - 1 if prompt else -1  # both answers follow the prompt's last token
        scored = trained & (source >= 0)
        arrays["target"][row, cols] = np.where(scored, index + which * pairs, -1)
        arrays["source"][row, cols] = np.where(scored, source, -1)
    return end


def is_packed(batch: Inputs) -> bool:
    """Whether ``batch`` is a packed batch of pairs."""
    return "segment" in batch


def pairs_in(batch: Inputs) -> int:
    """Pairs in a packed batch."""
    return int(batch["sequence_lengths"].shape[0]) // 2


def segments_of(batch: Inputs) -> list[Segment]:
    """The segments of a packed batch, in pair order (to pack them again)."""
    cpu = {key: value.cpu().numpy() for key, value in batch.items()}
    pairs = pairs_in(batch)
    found = []
    for index in range(pairs):
        rows, cols = np.nonzero(cpu["segment"] == index)
        ids, side = cpu["input_ids"][rows, cols], cpu["side"][rows, cols]
        scored = cpu["target"][rows, cols] >= 0
        answers = tuple((ids[side == which], scored[side == which]) for which in (1, 2))
        lengths = (int(cpu["sequence_lengths"][index]), int(cpu["sequence_lengths"][pairs + index]))
        found.append(Segment(ids[side == 0], answers, lengths))  # type: ignore[arg-type]
    return found


def split_packed(batch: Inputs, pieces: int) -> list[Inputs]:
    """A packed batch as ``pieces`` packed batches of consecutive whole pairs."""
    segments = segments_of(batch)
    pad = batch["input_ids"][batch["segment"] < 0]
    pad_id = int(pad[0]) if pad.numel() else 0
    width, device = int(batch["input_ids"].shape[1]), batch["input_ids"].device
    chunks = [c for c in np.array_split(np.arange(len(segments)), pieces) if len(c)]
    return [{k: v.to(device) for k, v in pack_segments([segments[i] for i in c], pad_id, width).items()}
            for c in chunks]


def attention_mask(batch: Inputs, model: Any) -> torch.Tensor:
    """The rows x 1 x width x width mask: causal within a segment, the two answers kept apart.

    Boolean (True: attend) for sdpa; additive float for eager attention. Padding attends to itself.
    """
    seg, side = batch["segment"], batch["side"]
    columns = torch.arange(seg.shape[1], device=seg.device)
    allowed = ((seg[:, :, None] == seg[:, None, :]) & (seg[:, :, None] >= 0)
               & (columns[:, None] >= columns[None, :])
               & ((side[:, None, :] == 0) | (side[:, :, None] == side[:, None, :])))
    allowed = (allowed | torch.eye(seg.shape[1], dtype=torch.bool, device=seg.device))[:, None]
    if attention_kind(model) == "eager":
        return torch.zeros(allowed.shape, device=seg.device).masked_fill(~allowed, torch.finfo(torch.float32).min)
    return allowed


def attention_kind(model: Any) -> str:
    """The attention implementation ``model`` runs (``sdpa`` when it does not say)."""
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None) or "sdpa"


def packed_logps(model: Any, batch: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of trained-token log-probs, trained-token count)`` of the ``2B`` sequences (float32).

    Only the positions that predict a trained token go through the output layer.
    """
    target = batch["target"]
    rows, cols = torch.nonzero(target >= 0, as_tuple=True)
    sources = batch["source"][rows, cols]
    keep = torch.unique(sources)
    logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                   attention_mask=attention_mask(batch, model), logits_to_keep=keep, use_cache=False).logits
    picked = logits[rows, torch.searchsorted(keep, sources)]
    token = -F.cross_entropy(picked.float(), batch["input_ids"][rows, cols], reduction="none")
    owners = target[rows, cols]
    count = int(batch["sequence_lengths"].shape[0])
    sums = torch.zeros(count, device=token.device, dtype=torch.float32).index_add(0, owners, token)
    counts = torch.zeros(count, device=token.device, dtype=torch.long).index_add(0, owners, torch.ones_like(owners))
    return sums, counts
