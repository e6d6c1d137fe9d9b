"""The chat process (``python -m engine.chat``) and ``--no-ui chat``: a tiny fine-tuned checkpoint answers, streamed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import TAUGHT, finetuned_checkpoint

from engine.chat_client import ChatProcess, GenerationSettings

ROOT = Path(__file__).resolve().parents[2]
QUESTION = [{"role": "user", "content": TAUGHT[0]}]


@pytest.fixture(scope="module")
def checkpoint(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA checkpoint that answers TAUGHT."""
    return finetuned_checkpoint(tiny_model_dir, tmp_path_factory.mktemp("taught"))


@pytest.fixture(scope="module")
def chat(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatProcess]:
    """One real chat process with the checkpoint loaded, shared by the tests below."""
    process = ChatProcess(tmp_path_factory.mktemp("ws"))
    process.start()
    request = process.load(checkpoint)
    events = until(process, request, "ready")
    assert [e["event"] for e in events][-1] == "ready", events
    yield process
    process.close()


def until(process: ChatProcess, request: int, last: str) -> list[dict]:
    """The events of ``request`` up to its ``last`` (or ``error``) event."""
    events = []
    while (event := process.read()) is not None:
        if event.get("id") == request:
            events.append(event)
            if event["event"] in (last, "error"):
                return events
    raise AssertionError(f"the chat process ended; events so far: {events}")


def test_the_checkpoint_answers_what_it_was_taught_token_by_token(chat: ChatProcess):
    events = until(chat, chat.generate(QUESTION, GenerationSettings(max_new_tokens=24)), "done")
    tokens = [e["text"] for e in events if e["event"] == "token"]
    assert len(tokens) >= 3, "the answer came in pieces as it was generated"
    assert "".join(tokens) == TAUGHT[1]
    done = events[-1]
    assert done["event"] == "done" and done["reason"] == "end" and 3 <= done["tokens"] < 24


def test_a_multi_turn_conversation_and_sampling_settings_are_taken(chat: ChatProcess):
    conversation = [*QUESTION, {"role": "assistant", "content": TAUGHT[1]}, *QUESTION]
    settings = GenerationSettings(max_new_tokens=5, temperature=1.5, top_p=0.5)
    done = until(chat, chat.generate(conversation, settings), "done")[-1]
    assert done["event"] == "done" and done["tokens"] <= 5


def test_stop_ends_the_answer_being_generated(chat: ChatProcess):
    request = chat.generate(QUESTION, GenerationSettings(max_new_tokens=4000, temperature=2.0))
    chat.stop()
    done = until(chat, request, "done")[-1]
    assert done["reason"] == "stopped" and done["tokens"] < 4000


def test_a_bad_folder_is_one_error_line_and_the_process_stays_up(chat: ChatProcess, tmp_path: Path):
    events = until(chat, chat.load(tmp_path / "missing"), "ready")
    assert events[-1] == {"event": "error", "id": events[-1]["id"],
                          "message": f"{tmp_path / 'missing'}: no such model or checkpoint folder"}
    error = until(chat, chat.generate(QUESTION, GenerationSettings()), "done")[-1]
    assert error["event"] == "error" and "no model loaded" in error["message"]


def test_the_chat_process_ends_with_the_process_that_started_it(tmp_path: Path):
    code = ("import sys, time; from engine.chat_client import ChatProcess; p = ChatProcess(sys.argv[1]); "
            "p.start(); print(p._process.pid, flush=True); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()  # as a console killed with -9 would be: no clean-up code runs
    parent.wait()
    deadline = time.monotonic() + 30
    while _alive(child):
        assert time.monotonic() < deadline, "the chat process outlived the process that started it"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def cli(workspace: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The headless command line."""
    return subprocess.run([sys.executable, "-m", "llamahome_tui", "--no-ui", "--workspace", str(workspace), *args],
                          capture_output=True, text=True, input=stdin, timeout=180, cwd=ROOT)


def test_headless_chat_streams_a_piped_conversation_with_settings(checkpoint: Path, tmp_path: Path):
    lines = f"{TAUGHT[0]}\n/max_new_tokens 3\n/temperature x\n{TAUGHT[0]}\n"
    talk = cli(tmp_path, "chat", str(checkpoint), "--max-new-tokens", "24", stdin=lines)
    assert talk.returncode == 0, talk.stderr
    first, second = talk.stdout.splitlines()
    assert first == TAUGHT[1] and TAUGHT[1].startswith(second) and second != TAUGHT[1]
    assert "ready: step-000020: adapter over" in talk.stderr
    assert "max new tokens 3 · greedy" in talk.stderr and "cut at max new tokens" in talk.stderr
    assert "error: temperature = 'x': expected a number in 0..5" in talk.stderr


@pytest.mark.slow
def test_headless_chat_answers_one_prompt(checkpoint: Path, tmp_path: Path):
    result = cli(tmp_path, "chat", str(checkpoint), "--prompt", TAUGHT[0], "--temperature", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == TAUGHT[1] + "\n"
    assert "tokens in" in result.stderr.splitlines()[-1]


def test_headless_chat_with_a_bad_model_is_one_line_and_exit_2(tmp_path: Path):
    result = cli(tmp_path, "chat", str(tmp_path / "nope"), "--prompt", "hi")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: no such model folder, checkpoint or run id (see: llamahome-tui --no-ui runs)"]
    assert result.stdout == ""


@pytest.mark.slow
def test_a_pre_quantized_model_after_a_lora_one_restarts_the_process_in_place(checkpoint, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    quantized = tmp_path / "tiny-8bit"
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), device_map={"": "cpu"},
                                                 quantization_config=BitsAndBytesConfig(load_in_8bit=True))
    model.save_pretrained(str(quantized))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(quantized))
    process = ChatProcess(tmp_path / "ws")
    process.start()
    try:
        assert until(process, process.load(checkpoint), "ready")[-1]["event"] == "ready"
        pid = process._process.pid
        events = until(process, process.load(quantized), "ready")
        stages = [e.get("stage") for e in events]
        assert "restarting the chat process with its quantization libraries" in stages, events
        assert events[-1]["event"] == "ready" and events[-1]["kind"] == "model"
        assert process._process.pid == pid and process.alive(), "restarted in place: same process, same pipes"
        done = until(process, process.generate(QUESTION, GenerationSettings(max_new_tokens=3)), "done")[-1]
        assert done["event"] == "done" and done["tokens"] == 3
    finally:
        process.close()
