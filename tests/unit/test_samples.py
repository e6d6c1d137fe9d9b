"""Checks for the generated sample datasets in ``data/samples``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "data" / "make_samples.py"
SAMPLES = ROOT / "data" / "samples"
EXPECTED = (
    "chat_train.jsonl", "chat_eval.jsonl", "base_corpus.txt",
    "alpaca.json", "sharegpt.json", "README.md", "preference_train.jsonl",
    "kto_train.jsonl",
)
CAPITAL_ANSWER = re.compile(r"^The capital of (?:the )?(.+) is (.+)\.$")


def load_jsonl(name: str) -> list[list[dict[str, str]]]:
    """Return the ``messages`` list of every line of a shipped JSONL file."""
    lines = (SAMPLES / name).read_text(encoding="ascii").splitlines()
    return [json.loads(line)["messages"] for line in lines]


def user_questions(conversations: list[list[dict[str, str]]]) -> set[str]:
    """Return every user message content."""
    return {m["content"] for msgs in conversations for m in msgs if m["role"] == "user"}


def test_generator_reproduces_shipped_files(tmp_path: Path) -> None:
    """The default-seed output must be byte-identical to the shipped files."""
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(EXPECTED)
    for name in EXPECTED:
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name


def test_sizes_and_ascii() -> None:
    """Shipped files are ASCII and stay within the size budget."""
    total = 0
    for name in EXPECTED:
        data = (SAMPLES / name).read_bytes()
        data.decode("ascii")
        total += len(data)
    assert total < 5 * 1024 * 1024
    assert 1_500_000 <= (SAMPLES / "base_corpus.txt").stat().st_size < 3_000_000


@pytest.mark.parametrize("name", ["chat_train.jsonl", "chat_eval.jsonl"])
def test_chat_lines_are_well_formed(name: str) -> None:
    """Roles alternate user/assistant after an optional system message."""
    conversations = load_jsonl(name)
    assert len(conversations) >= (3000 if name == "chat_train.jsonl" else 300)
    for messages in conversations:
        roles = [m["role"] for m in messages]
        if roles[0] == "system":
            roles = roles[1:]
        assert roles and len(roles) % 2 == 0, messages
        assert roles == ["user", "assistant"] * (len(roles) // 2), messages
        assert all(isinstance(m["content"], str) and m["content"].strip()
                   for m in messages), messages
        if name == "chat_eval.jsonl":
            assert len(roles) == 2, messages


def test_eval_questions_not_in_train() -> None:
    """No eval user question appears verbatim in the training data."""
    train = user_questions(load_jsonl("chat_train.jsonl"))
    evals = user_questions(load_jsonl("chat_eval.jsonl"))
    assert not evals & train


def held_out_capitals() -> list[tuple[str, str]]:
    """Return ``(country, capital)`` pairs asked about in ``chat_eval``."""
    pairs = set()
    for messages in load_jsonl("chat_eval.jsonl"):
        match = CAPITAL_ANSWER.match(messages[-1]["content"])
        if match:
            pairs.add((match.group(1), match.group(2)))
    return sorted(pairs)


def test_held_out_capitals_absent_from_training_files() -> None:
    """Held-out countries/capitals never occur in the training files."""
    held = held_out_capitals()
    assert len(held) >= 15
    corpus = (SAMPLES / "base_corpus.txt").read_text(encoding="ascii")
    for name in ("chat_train.jsonl", "alpaca.json", "sharegpt.json"):
        text = (SAMPLES / name).read_text(encoding="ascii")
        for country, capital in held:
            for word in (country, capital):
                assert not re.search(rf"\b{re.escape(word)}\b", text), (name, word)
    for country, capital in held:
        assert f"The capital of {country} is {capital}." in corpus.replace(
            "The capital of the ", "The capital of ")


def test_preference_pairs_choose_the_right_answer_and_validate_for_dpo() -> None:
    """Each pair's chosen answer is its conversation's own; the rejected one is another answer."""
    from engine.data.validate import check_file

    train = load_jsonl("chat_train.jsonl")
    pairs = [json.loads(line) for line in (SAMPLES / "preference_train.jsonl").read_text().splitlines()]
    assert len(pairs) == len(train)
    for messages, pair in zip(train, pairs, strict=True):
        assert pair["prompt"] == messages[:-1]
        assert pair["chosen"] == [messages[-1]]
        assert pair["rejected"][0]["content"] != messages[-1]["content"]
    report = check_file(SAMPLES / "preference_train.jsonl", objective="dpo")
    assert report.invalid == report.counts().get("duplicate", 0)


def test_kto_records_judge_the_right_answer_desirable_and_validate_for_kto() -> None:
    """A desirable completion is its conversation's own answer, an undesirable one another answer."""
    from engine.data.validate import check_file

    train = load_jsonl("chat_train.jsonl")
    records = [json.loads(line) for line in (SAMPLES / "kto_train.jsonl").read_text().splitlines()]
    assert 1000 <= len(records) <= len(train)
    for messages, record in zip(train, records, strict=False):
        assert record["prompt"] == messages[:-1]
        right = record["completion"][0]["content"] == messages[-1]["content"]
        assert right is record["label"]
    assert 0.4 < sum(r["label"] for r in records) / len(records) < 0.6
    report = check_file(SAMPLES / "kto_train.jsonl", objective="kto")
    assert report.invalid == report.counts().get("duplicate", 0)
