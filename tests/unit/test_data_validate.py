"""The validation report: every reason with its line, skip/fail, duplicates, stats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data.stats import compute_stats, histogram_text
from engine.data.validate import ValidationReport, char_length, check_file, new_report, valid_conversations
from engine.errors import DataError

PAIR = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
LINES = [
    json.dumps({"messages": PAIR}),                                            # 1 valid
    "{bad json",                                                               # 2 bad_json
    json.dumps({"foo": 1}),                                                    # 3 unknown_shape
    json.dumps({"messages": [{"content": "x"}, PAIR[1]]}),                     # 4 missing role
    json.dumps({"messages": [PAIR[0], {"role": "assistant"}]}),                # 5 missing content
    json.dumps({"messages": [PAIR[1], PAIR[0]]}),                              # 6 order
    json.dumps({"prompt": "Q", "completion": " "}),                            # 7 empty
    json.dumps({"text": "x" * 500}),                                           # 8 too long
    json.dumps({"messages": PAIR}),                                            # 9 duplicate
]


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "d.jsonl"
    path.write_bytes(("\n".join(LINES) + "\n").encode() + b'{"text": "\xff"}\n')   # 10 not_utf8
    return path


def test_every_reason_with_its_line_and_field(bad_file: Path) -> None:
    report = check_file(bad_file, char_length, 100)
    found = [(i.where.rsplit(":", 1)[1], i.code, i.field) for i in report.issues]
    assert found == [("2", "bad_json", ""), ("3", "unknown_shape", ""),
                     ("4", "missing_role_or_content", "messages[0].role"),
                     ("5", "missing_role_or_content", "messages[1].content"),
                     ("6", "roles_out_of_order", "message 0"), ("7", "empty_content", "completion"),
                     ("8", "too_long", ""), ("9", "duplicate", ""), ("10", "not_utf8", "")]
    assert (report.total, report.valid, report.invalid) == (10, 1, 9)
    assert report.to_dict()["counts"]["missing_role_or_content"] == 2
    assert report.issues[6].reason == "length 500, over the limit of 100"


def test_skip_reports_and_fail_stops_at_the_first(bad_file: Path) -> None:
    report = new_report(bad_file, None, "characters", 100)
    kept = list(valid_conversations(bad_file, report, on_invalid="skip"))
    assert [w for w, _ in kept] == [f"{bad_file}:1"] and report.invalid == 9
    with pytest.raises(DataError, match=rf"^{bad_file}:2: invalid JSON"):
        list(valid_conversations(bad_file, new_report(bad_file, None, "characters", 100), on_invalid="fail"))


def test_kept_duplicates_are_not_rejected(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text((json.dumps({"messages": PAIR}) + "\n") * 3)
    report = ValidationReport(str(path), "jsonl", "characters", 100)
    assert len(list(valid_conversations(path, report, keep_duplicates=True))) == 3
    assert report.invalid == 0


def test_stats_counts_lengths_roles_and_outliers(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    records = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a" * 8}]}
               for i in range(40)]
    records.append({"text": "z" * 400})
    records.append(records[0])
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    stats = compute_stats(path)
    assert stats.samples == 41 and stats.duplicates == 1 and stats.invalid == 0
    assert stats.role_counts == {"assistant": 41, "user": 40}
    assert stats.token_unit.startswith("estimated")
    assert stats.outliers == [(f"{path}:41", 100)]
    assert stats.lengths["max"] == 100 and stats.lengths["p50"] == 3
    assert sum(count for _, _, count in stats.histogram) == 41
    assert len(histogram_text(stats)) == len(stats.histogram)


def test_stats_with_a_tokenizer_counts_tokens(tmp_path: Path, tiny_model_dir: Path) -> None:
    from engine.data.stats import load_light_tokenizer

    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"messages": PAIR}) + "\n")
    stats = compute_stats(path, load_light_tokenizer(tiny_model_dir))
    assert stats.token_unit == "tokens" and stats.tokens > 5


def test_modules_the_ui_imports_do_not_import_torch_or_transformers() -> None:
    import subprocess
    import sys

    code = ("import sys, engine.data.formats, engine.data.validate, engine.data.stats, engine.data.records, "
            "engine.data.tokenized, engine.data.token_cache, llamahome_tui.data_commands; "
            "print(sorted(m for m in ('torch', 'transformers', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dropped_duplicates_do_not_stop_a_run_that_fails_on_invalid_records(tmp_path: Path) -> None:
    path = tmp_path / "dup.jsonl"
    path.write_text("\n".join([json.dumps({"messages": PAIR})] * 3) + "\n")
    report = new_report(path, None, "characters", 1 << 62)
    kept = list(valid_conversations(path, report, on_invalid="fail", keep_duplicates=False))
    assert len(kept) == 1 and report.errors == 0 and report.warnings == 2
