"""Step hooks: sample generations every N steps; TensorBoard event files of a run's metrics."""

from __future__ import annotations

from types import SimpleNamespace

from engine.events import Eval, Generation, Stage, Step
from engine.train.generation import SampleGenerations
from engine.train.model import load_tokenizer
from engine.train.tensorboard import TensorBoardLog, with_tensorboard


def test_sample_generations_every_n_steps(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    model.train()
    events: list = []
    hook = SampleGenerations(load_tokenizer(tiny_model_dir), ["What is 2 + 3?", "Capital of Peru?"], every=3,
                             max_new_tokens=4, emit=events.append)
    hook.base(model)
    for step in range(1, 7):
        hook(SimpleNamespace(model=model, progress=SimpleNamespace(step=step)))
    answers = [e for e in events if isinstance(e, Generation)]
    assert [(e.step, e.prompt, e.base) for e in answers] == [
        (0, "What is 2 + 3?", True), (0, "Capital of Peru?", True),
        (3, "What is 2 + 3?", False), (3, "Capital of Peru?", False),
        (6, "What is 2 + 3?", False), (6, "Capital of Peru?", False)]
    assert all(isinstance(e.text, str) for e in answers)
    stages = [(e.name, e.done, e.total) for e in events if isinstance(e, Stage)]
    assert stages == [("generating", 0, 2), ("generating", 2, 2)] * 3, "each round says it generates, then done"
    assert model.training


def test_a_stop_cuts_the_samples_short_and_keeps_none(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    events: list = []
    hook = SampleGenerations(load_tokenizer(tiny_model_dir), ["What is 2 + 3?"], every=1, max_new_tokens=50,
                             emit=events.append)
    asked: list[int] = []

    def stop_after_three_tokens() -> bool:
        asked.append(1)
        return len(asked) >= 3
    hook(SimpleNamespace(model=model, progress=SimpleNamespace(step=1), interrupt=stop_after_three_tokens))
    assert len(asked) == 4, "asked after each of 3 tokens, then once more: generation ended at the stop"
    assert not [e for e in events if isinstance(e, Generation)]
    assert "samples of step 1 were cut short" in events[-1].message


def test_no_prompts_or_zero_steps_generate_nothing(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    assert not SampleGenerations(tokenizer, [], 1, 4, print).due(5)
    assert not SampleGenerations(tokenizer, ["hi"], 0, 4, print).due(5)


def test_tensorboard_writes_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = TensorBoardLog(tmp_path / "tb")
    seen: list = []
    emit = with_tensorboard(seen.append, log)
    for step in (1, 2):
        emit(Step(step=step, total_steps=2, epoch=0.5, loss=3.0 - step, lr=1e-3, grad_norm=None,
                  tokens_per_s=100.0, elapsed_s=0.0))
    emit(Eval(step=2, eval_loss=1.5, perplexity=4.48))
    emit(Generation(step=2, prompt="p", text="t"))
    log.close()
    assert len(seen) == 4
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert [e.value for e in events.Scalars("train/loss")] == [2.0, 1.0]
    assert [e.value for e in events.Scalars("eval/loss")] == [1.5]
    assert "train/grad_norm" not in events.Tags()["scalars"]
