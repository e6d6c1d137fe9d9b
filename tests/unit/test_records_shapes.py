"""Reading records from files and turning every supported shape into validated chat messages."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from engine.data.dataset import load_conversations
from engine.data.records import read_records
from engine.data.shapes import to_messages
from engine.errors import DataError, UserError

WHERE = "data.jsonl:7"
PAIR = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def system(text: str) -> dict[str, str]:
    return {"role": "system", "content": text}


def data_error(record: dict[str, Any]) -> str:
    """The message of the DataError that ``to_messages`` raises for ``record``."""
    with pytest.raises(DataError) as caught:
        to_messages(record, WHERE)
    return str(caught.value)


def read_error(path: Path) -> str:
    """The message of the DataError raised while reading ``path`` to the end."""
    with pytest.raises(DataError) as caught:
        list(read_records(path))
    return str(caught.value)


# --- every shape converts --------------------------------------------------------------------

@pytest.mark.parametrize(("record", "expected"), [
    pytest.param({"messages": [system("Be brief."), user("2+2?"), assistant("4"), user("3+3?"), assistant("6")]},
                 [system("Be brief."), user("2+2?"), assistant("4"), user("3+3?"), assistant("6")], id="messages"),
    pytest.param({"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"},
                                    {"from": "gpt", "value": "A"}, {"from": "user", "value": "Q2"},
                                    {"from": "assistant", "value": "A2"}]},
                 [system("S"), user("Q"), assistant("A"), user("Q2"), assistant("A2")], id="sharegpt"),
    pytest.param({"instruction": "Add the numbers.", "output": "5"},
                 [user("Add the numbers."), assistant("5")], id="alpaca"),
    pytest.param({"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
                 [user("Add the numbers.\n\n2 and 3"), assistant("5")], id="alpaca-input"),
    pytest.param({"instruction": "Add.", "input": "", "output": "5"},
                 [user("Add."), assistant("5")], id="alpaca-empty-input"),
    pytest.param({"instruction": "Now add 3.", "output": "8", "system": "You add.",
                  "history": [["Start at 1.", "1"], ["Add 4.", "5"]]},
                 [system("You add."), user("Start at 1."), assistant("1"), user("Add 4."), assistant("5"),
                  user("Now add 3."), assistant("8")], id="alpaca-system-history"),
    pytest.param({"prompt": "Capital of Peru?", "completion": "Lima"},
                 [user("Capital of Peru?"), assistant("Lima")], id="prompt-completion"),
    pytest.param({"text": "Once upon a time."}, [assistant("Once upon a time.")], id="text"),
])
def test_every_shape_converts_to_messages(record: dict[str, Any], expected: list[dict[str, str]]) -> None:
    assert to_messages(record, WHERE) == expected


def test_messages_shape_wins_over_other_keys() -> None:
    assert to_messages({"messages": PAIR, "text": "ignored"}, WHERE) == PAIR


# --- shape errors name the record and the field ----------------------------------------------

@pytest.mark.parametrize(("record", "expected"), [
    pytest.param({"question": "Q", "answer": "A"},
                 f"{WHERE}: unknown record shape (keys: answer, question)", id="unknown-shape"),
    pytest.param({}, f"{WHERE}: unknown record shape (keys: none)", id="no-keys"),
    pytest.param({"messages": []}, f"{WHERE}: messages: expected a non-empty list", id="empty-messages"),
    pytest.param({"messages": "hi"}, f"{WHERE}: messages: expected a non-empty list", id="messages-not-list"),
    pytest.param({"messages": [user("Q"), "A"]}, f"{WHERE}: messages[1]: expected an object", id="not-object"),
    pytest.param({"messages": [user("Q"), {"role": "bot", "content": "A"}]},
                 f"{WHERE}: messages[1].role: missing or unknown role 'bot'", id="unknown-role"),
    pytest.param({"messages": [{"content": "Q"}, assistant("A")]},
                 f"{WHERE}: messages[0].role: missing or unknown role None", id="missing-role"),
    pytest.param({"messages": [user("Q"), {"role": "assistant"}]},
                 f"{WHERE}: messages[1].content: missing", id="missing-content"),
    pytest.param({"messages": [user("Q"), assistant("  \n")]},
                 f"{WHERE}: messages[1].content: empty content", id="empty-content"),
    pytest.param({"messages": [user("Q"), {"role": "assistant", "content": 42}]},
                 f"{WHERE}: messages[1].content: content must be a string, got a number", id="int-content"),
    pytest.param({"messages": [{"role": "user", "content": None}, assistant("A")]},
                 f"{WHERE}: messages[0].content: content must be a string, got null", id="null-content"),
    pytest.param({"messages": [assistant("A"), user("Q")]},
                 f"{WHERE}: message 0: roles out of order: expected user, got assistant", id="assistant-first"),
    pytest.param({"messages": [user("Q"), user("Q again"), assistant("A")]},
                 f"{WHERE}: message 1: roles out of order: expected assistant, got user", id="two-users"),
    pytest.param({"messages": [user("Q"), system("late"), assistant("A")]},
                 f"{WHERE}: message 1: roles out of order: expected assistant, got system", id="late-system"),
    pytest.param({"messages": [system("S"), user("Q"), assistant("A"), user("Q2")]},
                 f"{WHERE}: the conversation must end with an assistant message", id="ends-with-user"),
    pytest.param({"messages": [system("S")]},
                 f"{WHERE}: the conversation must end with an assistant message", id="only-system"),
    pytest.param({"conversations": [{"from": "robot", "value": "Q"}]},
                 f"{WHERE}: conversations[0].from: missing or unknown speaker 'robot'", id="sharegpt-speaker"),
    pytest.param({"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt"}]},
                 f"{WHERE}: conversations[1].value: missing", id="sharegpt-missing-value"),
    pytest.param({"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": ""}]},
                 f"{WHERE}: conversations[1].value: empty content", id="sharegpt-empty-value"),
    pytest.param({"conversations": [{"from": "gpt", "value": "A"}, {"from": "human", "value": "Q"}]},
                 f"{WHERE}: message 0: roles out of order", id="sharegpt-order"),
    pytest.param({"instruction": "Q"}, f"{WHERE}: output: missing", id="alpaca-no-output"),
    pytest.param({"instruction": "", "output": "A"}, f"{WHERE}: instruction: empty content", id="alpaca-empty"),
    pytest.param({"instruction": 5, "input": "x", "output": "A"},
                 f"{WHERE}: instruction: content must be a string, got a number", id="alpaca-int-instruction"),
    pytest.param({"instruction": "Q", "input": ["x"], "output": "A"},
                 f"{WHERE}: input: content must be a string, got an array", id="alpaca-list-input"),
    pytest.param({"instruction": "Q", "output": None},
                 f"{WHERE}: output: content must be a string, got null", id="alpaca-null-output"),
    pytest.param({"instruction": "Q", "output": "A", "history": [["only one"]]},
                 f"{WHERE}: history[0]: expected a [question, answer] pair", id="alpaca-history-pair"),
    pytest.param({"instruction": "Q", "output": "A", "history": 5},
                 f"{WHERE}: history: expected a list of [question, answer] pairs", id="alpaca-history-int"),
    pytest.param({"instruction": "Q", "output": "A", "history": [["Q0", 7]]},
                 f"{WHERE}: history[0][1]: content must be a string, got a number", id="alpaca-history-content"),
    pytest.param({"instruction": "Q", "output": "A", "system": 3},
                 f"{WHERE}: system: content must be a string, got a number", id="alpaca-system"),
    pytest.param({"prompt": "Q", "completion": ""}, f"{WHERE}: completion: empty content", id="completion"),
    pytest.param({"prompt": ["Q"], "completion": "A"},
                 f"{WHERE}: prompt: content must be a string, got an array", id="prompt-list"),
    pytest.param({"text": " "}, f"{WHERE}: text: empty content", id="text-empty"),
    pytest.param({"text": {"body": "x"}}, f"{WHERE}: text: content must be a string, got an object", id="text-dict"),
])
def test_shape_errors_name_record_and_field(record: dict[str, Any], expected: str) -> None:
    message = data_error(record)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_data_errors_are_user_errors() -> None:
    """The CLI shows UserError as one line with exit code 2; DataError must be one."""
    assert issubclass(DataError, UserError)


# --- reading JSONL ---------------------------------------------------------------------------

def test_jsonl_records_carry_their_line_and_blank_lines_keep_numbering(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    first, second = {"text": "one"}, {"messages": PAIR}
    path.write_text(f"{json.dumps(first)}\n\n   \n{json.dumps(second)}\r\n\n")
    assert list(read_records(path)) == [(f"{path}:1", first), (f"{path}:4", second)]


def test_jsonl_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": PAIR}) + "\n\n{not json\n" + json.dumps({"messages": PAIR}) + "\n")
    message = read_error(path)
    assert message.startswith(f"{path}:3: invalid JSON: "), message


def test_jsonl_line_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    assert read_error(path).startswith(f"{path}:2: not UTF-8")


def test_jsonl_line_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text('{"text": "fine"}\n["a", "list"]\n')
    assert read_error(path) == f"{path}:2: expected a JSON object, got an array"


def test_jsonl_with_byte_order_mark_reads(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"text": "one"}).encode() + b"\n")
    assert list(read_records(path)) == [(f"{path}:1", {"text": "one"})]


def test_shape_error_in_a_file_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    bad = {"messages": [user("Q"), {"role": "assistant", "content": ""}]}
    path.write_text(json.dumps({"messages": PAIR}) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:2: messages[1].content: empty content")):
        load_conversations(path)


# --- reading a JSON array --------------------------------------------------------------------

def test_json_array_records_are_numbered(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    path.write_text(json.dumps([{"text": "a"}, {"messages": PAIR}]))
    assert [where for where, _ in read_records(path)] == [f"{path}: record 1", f"{path}: record 2"]


def test_json_object_holding_one_list_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    path.write_text(json.dumps({"name": "demo", "data": [{"text": "a"}]}))
    assert list(read_records(path)) == [(f"{path}: record 1", {"text": "a"})]


def test_json_array_with_a_bad_record_names_it(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    path.write_text(json.dumps([{"messages": PAIR}, {"messages": PAIR}, {"messages": [user("Q")]}]))
    with pytest.raises(DataError) as caught:
        load_conversations(path)
    assert str(caught.value) == f"{path}: record 3: the conversation must end with an assistant message"


def test_json_array_with_a_non_object_names_it(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    path.write_text(json.dumps([{"text": "a"}, "b"]))
    assert read_error(path) == f"{path}: record 2: expected a JSON object"


def test_json_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    path.write_text('[\n  {"text": "a"},\n  {"text": }\n]\n')
    assert read_error(path).startswith(f"{path}:3: invalid JSON: ")


def test_json_not_an_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    path.write_text('"just a string"')
    assert read_error(path) == f"{path}: expected a JSON array of records"


def test_json_object_with_two_lists_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    path.write_text(json.dumps({"train": [], "eval": []}))
    assert read_error(path) == f"{path}: expected a JSON array of records or an object holding one"


# --- the file itself -------------------------------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    assert read_error(path) == f"{path}: no such file"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert read_error(path) == f"{path}: file is empty"


def test_folder_without_data_files(tmp_path: Path) -> None:
    (tmp_path / "notes.doc").write_text("x")
    assert read_error(tmp_path).startswith(f"{tmp_path}: no data files in this folder")


def test_file_of_blank_lines_has_no_records(tmp_path: Path) -> None:
    path = tmp_path / "blank.jsonl"
    path.write_text("\n  \n\n")
    with pytest.raises(DataError) as caught:
        load_conversations(path)
    assert str(caught.value) == f"{path}: no records found"


def test_load_conversations_keeps_where_and_messages(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"prompt": "Q", "completion": "A"}) + "\n\n" + json.dumps({"messages": PAIR}) + "\n")
    conversations = load_conversations(path)
    assert [c.where for c in conversations] == [f"{path}:1", f"{path}:3"]
    assert conversations[0].messages == [user("Q"), assistant("A")]
    assert conversations[1].messages == PAIR
