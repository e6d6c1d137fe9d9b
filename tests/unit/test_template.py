"""Chat rendering, the loss mask, truncation, evaluation prompts, the split and tokenize_all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.data.dataset import Conversation, split, tokenize_all
from engine.data.template import IGNORE_INDEX, prompt_text, render, tokenize_conversation

SYSTEM = "You answer briefly."
FIRST_Q, FIRST_A = "What is 2 + 3?", "2 + 3 = 5"
SECOND_Q, SECOND_A = "What is the capital of Peru?", "The capital of Peru is Lima."
TWO_TURNS = [{"role": "system", "content": SYSTEM},
             {"role": "user", "content": FIRST_Q}, {"role": "assistant", "content": FIRST_A},
             {"role": "user", "content": SECOND_Q}, {"role": "assistant", "content": SECOND_A}]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from engine.train.model import load_tokenizer

    return load_tokenizer(tiny_model_dir)


def trained_text(tokenizer: Any, labels: list[int]) -> str:
    """The labelled tokens decoded in order (special tokens kept)."""
    return tokenizer.decode([t for t in labels if t != IGNORE_INDEX], skip_special_tokens=False)


def trained_runs(tokenizer: Any, labels: list[int]) -> list[str]:
    """Each maximal run of consecutive labelled tokens, decoded."""
    runs: list[list[int]] = []
    previous = IGNORE_INDEX
    for label in labels:
        if label != IGNORE_INDEX:
            if previous == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(label)
        previous = label
    return [tokenizer.decode(run, skip_special_tokens=False) for run in runs]


def test_render_is_chatml(tokenizer: Any) -> None:
    text = render(tokenizer, TWO_TURNS[1:3])
    assert text == f"<|im_start|>user\n{FIRST_Q}<|im_end|>\n<|im_start|>assistant\n{FIRST_A}<|im_end|>\n"


def test_assistant_mask_covers_each_answer_and_its_end_token(tokenizer: Any) -> None:
    sample = tokenize_conversation(tokenizer, TWO_TURNS, "assistant", 512)
    assert len(sample.labels) == len(sample.input_ids)
    assert all(label in (IGNORE_INDEX, token) for label, token in zip(sample.labels, sample.input_ids, strict=True))
    assert trained_runs(tokenizer, sample.labels) == [f"{FIRST_A}<|im_end|>", f"{SECOND_A}<|im_end|>"]
    text = trained_text(tokenizer, sample.labels)
    for untrained in (SYSTEM, FIRST_Q, SECOND_Q, "<|im_start|>", "assistant\n", "user"):
        assert untrained not in text


def test_assistant_mask_of_a_text_record_skips_the_header(tokenizer: Any) -> None:
    """A conversation that opens with the assistant (the ``text`` shape) trains only its content."""
    sample = tokenize_conversation(tokenizer, [{"role": "assistant", "content": SECOND_A}], "assistant", 512)
    assert trained_runs(tokenizer, sample.labels) == [f"{SECOND_A}<|im_end|>"]


def test_last_mask_covers_only_the_final_answer(tokenizer: Any) -> None:
    sample = tokenize_conversation(tokenizer, TWO_TURNS, "last", 512)
    assert trained_runs(tokenizer, sample.labels) == [f"{SECOND_A}<|im_end|>"]


def test_all_mask_covers_every_token(tokenizer: Any) -> None:
    sample = tokenize_conversation(tokenizer, TWO_TURNS, "all", 512)
    assert sample.labels == sample.input_ids
    assert sample.trained_tokens == len(sample.input_ids)
    assert tokenizer.decode(sample.input_ids, skip_special_tokens=False) == render(tokenizer, TWO_TURNS)


def test_truncation_keeps_ids_and_labels_aligned(tokenizer: Any) -> None:
    full = tokenize_conversation(tokenizer, TWO_TURNS, "assistant", 512)
    limit = len(full.input_ids) - 5
    cut = tokenize_conversation(tokenizer, TWO_TURNS, "assistant", limit)
    assert len(cut.input_ids) == len(cut.labels) == limit
    assert cut.input_ids == full.input_ids[:limit]
    assert cut.labels == full.labels[:limit]
    assert 0 < cut.trained_tokens < full.trained_tokens


def test_mask_is_the_same_for_every_shape_of_one_conversation(tokenizer: Any) -> None:
    from engine.data.shapes import to_messages

    pair = [{"role": "user", "content": FIRST_Q}, {"role": "assistant", "content": FIRST_A}]
    records = [{"messages": pair}, {"prompt": FIRST_Q, "completion": FIRST_A},
               {"instruction": FIRST_Q, "output": FIRST_A},
               {"conversations": [{"from": "human", "value": FIRST_Q}, {"from": "gpt", "value": FIRST_A}]}]
    samples = [tokenize_conversation(tokenizer, to_messages(r, "x:1"), "assistant", 512) for r in records]
    assert all(sample == samples[0] for sample in samples[1:])
    assert trained_runs(tokenizer, samples[0].labels) == [f"{FIRST_A}<|im_end|>"]


def test_prompt_text_ends_with_generation_prefix(tokenizer: Any) -> None:
    prompt, answer = prompt_text(tokenizer, TWO_TURNS)
    assert answer == SECOND_A
    assert prompt == render(tokenizer, TWO_TURNS[:-1]) + "<|im_start|>assistant\n"
    assert prompt.endswith(f"{SECOND_Q}<|im_end|>\n<|im_start|>assistant\n")
    assert SECOND_A not in prompt


# --- split ------------------------------------------------------------------------------------

def conversations(count: int) -> list[Conversation]:
    return [Conversation(f"data.jsonl:{i + 1}", [{"role": "user", "content": f"q{i}"},
                                                  {"role": "assistant", "content": f"a{i}"}])
            for i in range(count)]


def test_split_is_deterministic_disjoint_and_sized() -> None:
    items = conversations(40)
    train, held = split(items, 0.25, seed=7)
    assert split(items, 0.25, seed=7) == (train, held)
    assert len(held) == 10 and len(train) == 30
    assert {c.where for c in train}.isdisjoint({c.where for c in held})
    assert sorted(c.where for c in train + held) == sorted(c.where for c in items)
    assert split(items, 0.25, seed=8)[1] != held


def test_split_keeps_file_order_within_each_part() -> None:
    items = conversations(20)
    train, held = split(items, 0.2, seed=1)
    assert train == [c for c in items if c in train]
    assert held == [c for c in items if c in held]


@pytest.mark.parametrize(("count", "fraction", "held"), [(40, 0.0, 0), (1, 0.5, 0), (10, 0.01, 1), (10, 0.5, 5)])
def test_split_sizes_at_the_edges(count: int, fraction: float, held: int) -> None:
    train, validation = split(conversations(count), fraction, seed=3)
    assert (len(train), len(validation)) == (count - held, held)


# --- tokenize_all -----------------------------------------------------------------------------

def test_tokenize_all_drops_samples_whose_trained_tokens_were_truncated(tokenizer: Any) -> None:
    short = Conversation("a:1", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yes."}])
    long = Conversation("a:2", [{"role": "user", "content": SECOND_Q * 4}, {"role": "assistant", "content": "No."}])
    limit = len(tokenize_conversation(tokenizer, short.messages, "assistant", 512).input_ids)
    assert len(tokenize_conversation(tokenizer, long.messages, "assistant", 512).input_ids) > limit + 10
    samples = tokenize_all(tokenizer, [short, long, short], "assistant", limit)
    expected = tokenize_conversation(tokenizer, short.messages, "assistant", limit)
    assert samples == [expected, expected]
    assert all(s.trained_tokens > 0 for s in samples)
    assert len(tokenize_all(tokenizer, [short, long], "all", limit)) == 2
