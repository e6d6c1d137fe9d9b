"""Out-of-memory backoff pieces: splitting a micro-batch keeps the gradient; OOM detection and message."""

from __future__ import annotations

import contextlib

import pytest
import torch

from engine.config import Config
from engine.objectives.base import Objective
from engine.train.oom import backoff_message, forward_backward, is_oom


class _Tiny(torch.nn.Module):
    """A causal-LM-shaped toy: one-hot tokens through a linear layer, HF-style shifted loss."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(4, 7)

    def forward(self, input_ids, attention_mask, labels):
        logits = self.proj(torch.nn.functional.one_hot(input_ids, 4).float())
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 7), labels[:, 1:].reshape(-1),
                                                 ignore_index=-100)
        return type("Output", (), {"loss": loss})()


def test_split_micro_batch_gives_the_same_loss_and_gradient():
    torch.manual_seed(0)
    model = _Tiny()
    ids = torch.randint(0, 4, (5, 6))
    labels = ids.clone()
    labels[:2, :4] = -100  # uneven trained-token counts per row
    labels[4] = -100       # a row without trained tokens
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    results = []
    for splits in (1, 2, 4, 8):
        model.zero_grad()
        loss, _ = forward_backward(Objective(Config()), model, batch, splits, 0.5, lambda t: t.backward(),
                                   torch.enable_grad)
        results.append((float(loss), model.proj.weight.grad.clone()))
    for loss, grad in results[1:]:
        assert loss == pytest.approx(results[0][0], abs=1e-6)
        torch.testing.assert_close(grad, results[0][1], rtol=0, atol=1e-6)


def test_oom_detection():
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory"))
    assert not is_oom(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_oom(ValueError("out of memory"))


def test_backoff_message_keeps_the_effective_batch():
    assert backoff_message(7, 16, 1, 2) == ("out of memory at step 7: retrying with micro-batch 8 and gradient "
                                            "accumulation 2 (effective batch 16 unchanged)")


def test_a_group_reduces_gradients_once_per_micro_batch_however_many_pieces():
    """Ranks may cut their slices into different numbers of pieces (a 1-row slice is never split): each
    piece's forward and backward runs in ``sync(final)``, and only the last piece that runs is ``final``."""

    torch.manual_seed(0)
    model = _Tiny()
    ids = torch.randint(0, 4, (5, 6))
    labels = ids.clone()
    labels[4] = -100  # the last piece of 5 trains nothing: it is skipped, the one before it reduces
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    for splits, rows in ((1, 5), (2, 5), (5, 5), (3, 1)):
        seen: list[str] = []

        @contextlib.contextmanager
        def sync(final: bool, seen=seen):
            seen.append(f"sync={final}")
            yield
            seen.append("end")

        def backward(loss: torch.Tensor, seen=seen) -> None:
            seen.append("backward")
            loss.backward()
        one = {k: v[:rows] for k, v in batch.items()}
        forward_backward(Objective(Config()), model, one, splits, 1.0, backward, torch.enable_grad, sync)
        runs = {1: 1, 2: 2, 5: 4, 3: 1}[splits]
        assert seen == ["sync=False", "backward", "end"] * (runs - 1) + ["sync=True", "backward", "end"], splits


def test_a_rank_with_fewer_pieces_makes_up_the_group_s_passes_at_weight_zero():
    """FSDP gathers the weights in every forward: a rank with a 1-row slice runs as many passes as one cut in 3."""
    torch.manual_seed(0)
    model = _Tiny()
    ids = torch.randint(0, 4, (1, 6))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    model.zero_grad()
    want, _ = forward_backward(Objective(Config()), model, batch, 1, 0.5, lambda t: t.backward(), torch.enable_grad)
    grad = model.proj.weight.grad.clone()
    model.zero_grad()
    calls: list[int] = []
    passes: list[bool] = []

    def sync(final: bool):
        passes.append(final)
        return contextlib.nullcontext()
    got, _ = forward_backward(Objective(Config()), model, batch, 3, 0.5, lambda t: t.backward(), torch.enable_grad,
                              sync, lambda n: calls.append(n) or 3)
    assert calls == [1] and passes == [False, False, True]
    assert float(got) == float(want)
    torch.testing.assert_close(model.proj.weight.grad, grad, rtol=0, atol=0)
