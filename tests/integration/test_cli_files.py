"""Files users have, trained from the real command line: a ``save_to_disk`` folder, ``.jsonl.gz``, a file
with one bad record under ``on_invalid = "skip"``, and two sources mixed 3:1 from a config file."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import chat_records, write_jsonl

SHORT = ["--set", "training.max_steps=2", "--set", "training.batch_size=4", "--set", "eval.generate_samples=0",
         "--set", "eval.sample_steps=0", "--set", "data.validation_split=0.0", "--set", "training.precision=fp32"]


def cli(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The headless command line on its own workspace."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LLAMAHOME_")}
    command = [sys.executable, "-m", "llamahome_tui", "--no-ui", "--workspace", str(workspace), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def last_run(workspace: Path) -> dict:
    return json.loads(cli(workspace, "runs", "--json").stdout)[0]


def _one_bad(tmp_path: Path) -> Path:
    lines = [json.dumps(r) for r in chat_records(12, seed=3)]
    lines.insert(4, '{"messages": [ broken')
    data = tmp_path / "one_bad.jsonl"
    data.write_text("\n".join(lines) + "\n")
    return data


def test_one_bad_record_stops_train_before_a_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = _one_bad(tmp_path)
    refused = cli(tmp_path / "ws", "train", str(data), "--model", str(tiny_model_dir), *SHORT)
    assert refused.returncode == 2 and f"{data}:5: invalid JSON" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.slow
def test_one_bad_record_trains_under_skip(tiny_model_dir: Path, tmp_path: Path) -> None:
    done = cli(tmp_path / "ws", "train", str(_one_bad(tmp_path)), "--model", str(tiny_model_dir), *SHORT,
               "--set", "data.on_invalid=skip")
    assert done.returncode == 0, done.stdout + done.stderr
    assert last_run(tmp_path / "ws")["final_metrics"]["train_samples"] == 12


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["save_to_disk", "jsonl.gz"])
def test_a_save_to_disk_folder_and_a_gzip_file_train(tiny_model_dir: Path, tmp_path: Path, kind: str) -> None:
    records = chat_records(10, seed=4)
    if kind == "save_to_disk":
        import datasets

        data = tmp_path / "saved"
        datasets.Dataset.from_list(records).save_to_disk(str(data))
    else:
        data = tmp_path / "chat.jsonl.gz"
        with gzip.open(data, "wt") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in records)
    result = cli(tmp_path / "ws", "train", str(data), "--model", str(tiny_model_dir), *SHORT)
    assert result.returncode == 0, result.stdout + result.stderr
    run = last_run(tmp_path / "ws")
    assert run["status"] == "finished" and run["final_metrics"]["train_samples"] == 10


@pytest.mark.slow
def test_two_sources_mix_from_a_config_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    sums = write_jsonl(tmp_path / "sums.jsonl", chat_records(12, seed=5))
    more = write_jsonl(tmp_path / "more.jsonl", chat_records(4, seed=6))
    config = tmp_path / "mix.toml"
    config.write_text(f'[[data.sources]]\npath = "{sums.name}"\nweight = 3\n\n'
                      f'[[data.sources]]\npath = "{more.name}"\nweight = 1\nformat = "jsonl"\n')
    both = cli(tmp_path / "ws", "train", str(sums), "--config", str(config), "--model", str(tiny_model_dir))
    assert both.returncode == 2 and "give the data file or [[data.sources]], not both" in both.stderr
    command = [sys.executable, "-m", "llamahome_tui", "--no-ui", "--workspace", str(tmp_path / "ws"), "train",
               "--config", str(config), "--model", str(tiny_model_dir), *SHORT, "--set", "training.max_steps=4"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)  # relative paths
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = last_run(tmp_path / "ws")["final_metrics"]
    assert (metrics["samples_sums"], metrics["samples_more"]) == (12, 4)  # one epoch: 4 batches of 4


@pytest.mark.parametrize("kind", ["save_to_disk", "jsonl.gz", "folder"])
def test_the_worker_trains_a_folder_or_a_gzip_file(tiny_model_dir: Path, tmp_path: Path, kind: str) -> None:
    """The fast version of the CLI runs above: the worker's own job, in this process."""
    from test_families import train

    records = chat_records(12, seed=4)
    data = tmp_path / "data"
    if kind == "save_to_disk":
        import datasets

        datasets.Dataset.from_list(records).save_to_disk(str(data), num_shards=2)
    elif kind == "folder":
        data.mkdir()
        write_jsonl(data / "part-1.jsonl", records[:5])
        write_jsonl(data / "part-2.jsonl", records[5:])
    else:
        data = tmp_path / "chat.jsonl.gz"
        with gzip.open(data, "wt") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in records)
    run_dir, events = train(tiny_model_dir, "lora", data, tmp_path)
    assert (run_dir / "final" / "adapter_model.safetensors").is_file()
