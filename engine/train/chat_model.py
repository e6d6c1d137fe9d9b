"""Load a model to chat with, and stream its answer to a conversation token by token (imports torch).

Runs only in the chat process (``engine.chat``). An adapter (a LoRA checkpoint, a run's final
adapter, an exported adapter) loads with ``peft.PeftModel.from_pretrained`` over its base; a
merged export, a full checkpoint or any ``save_pretrained`` folder with
``AutoModelForCausalLM``. The conversation is rendered with the model's chat template (ChatML
when it has none: ``engine.data.template.render``, as training rendered it) and answered by
transformers' ``generate`` on a thread of its own, its text read from a ``TextIteratorStreamer``
as it comes; it ends at the token the template closes an answer with (``<end_of_turn>``,
``<|end|>``...) or EOS, and a stopping criterion ends it early when asked. A run that gave a
template-less model chat markers left an adapter for a grown vocabulary: the base's embeddings
grow to the run's tokenizer before the adapter loads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from engine.chat_models import chat_source
from engine.config import Config
from engine.data.chat_tokens import stop_token_ids
from engine.data.template import render
from engine.train.export import export_tokenizer
from engine.train.model import device, fit_embeddings, load_model


@dataclass
class LoadedChat:
    """A model ready to answer, its tokenizer, and a few words about what was loaded."""

    model: Any
    tokenizer: Any
    description: dict[str, Any] = field(default_factory=dict)


def load_chat_model(folder: Path, models_dir: Path | None, say: Callable[[str], None]) -> LoadedChat:
    """Load ``folder`` (adapter over its base, or a whole model) on the device, for inference.

    ``say`` hears each stage (``loading base …``, ``applying the adapter``); a folder that cannot
    be loaded is a UserError naming it (``chat_source``) before anything heavy happens.
    """
    source = chat_source(folder, models_dir)
    config = Config()
    say("loading the tokenizer")
    tokenizer = export_tokenizer(source)  # a checkpoint's: its base's as the run changed it (chat markers)
    if source.adapter:
        from peft import PeftModel

        assert source.base is not None
        say(f"loading base {source.base.name}")
        base = load_model(source.base, config)
        fit_embeddings(base, len(tokenizer), 0)  # rows the run added come from the adapter
        model = PeftModel.from_pretrained(base, str(source.weights))
    else:
        say(f"loading {source.folder.name}")
        model = load_model(source.weights, config)
    model = model.to(device()).eval()
    description = {"kind": "adapter" if source.adapter else "model",
                   "base": str(source.base) if source.adapter and source.base else "",
                   "parameters": sum(p.numel() for p in model.parameters()), "device": str(device())}
    return LoadedChat(model, tokenizer, description)


class _StopWhen(StoppingCriteria):
    """A stopping criterion that ends generation when ``should_stop`` says so (checked every token)."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self.should_stop = should_stop

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.should_stop(), dtype=torch.bool, device=input_ids.device)


def sampling_arguments(temperature: float, top_p: float) -> dict[str, Any]:
    """``generate`` arguments: greedy at temperature 0, else sampling with temperature and top-p."""
    if temperature <= 0:
        return {"do_sample": False}
    return {"do_sample": True, "temperature": temperature, "top_p": top_p}


def fit_context(ids: torch.Tensor, max_new_tokens: int, limit: int | None) -> tuple[torch.Tensor, int, int]:
    """Keep the prompt and answer inside the model's context: (ids, max new tokens, tokens dropped).

    The oldest tokens go first; the answer keeps room for at least half the context.
    """
    if not limit or ids.shape[1] + max_new_tokens <= limit:
        return ids, max_new_tokens, 0
    keep = max(limit - max_new_tokens, limit // 2)
    keep = min(keep, ids.shape[1])
    return ids[:, ids.shape[1] - keep:], min(max_new_tokens, limit - keep), ids.shape[1] - keep


def stream_reply(loaded: LoadedChat, messages: list[dict[str, str]], max_new_tokens: int,
                 temperature: float, top_p: float, should_stop: Callable[[], bool],
                 on_text: Callable[[str], None], threads: int | None = None) -> dict[str, Any]:
    """Generate the assistant's answer to ``messages``, handing its text to ``on_text`` as it comes.

    Returns ``reason`` (``end``, ``length`` or ``stopped``), ``tokens`` generated, ``seconds`` and
    ``trimmed`` (prompt tokens dropped to fit the context). ``threads`` sets torch's threads
    on the generating thread (None leaves them).
    """
    model, tokenizer = loaded.model, loaded.tokenizer
    prompt = render(tokenizer, messages, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    limit = getattr(model.config, "max_position_embeddings", None)
    ids, max_new_tokens, trimmed = fit_context(ids, max_new_tokens, limit)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    arguments = {"input_ids": ids.to(model.device), "attention_mask": torch.ones_like(ids).to(model.device),
                 "max_new_tokens": max_new_tokens, "streamer": streamer,
                 "stopping_criteria": StoppingCriteriaList([_StopWhen(should_stop)]),
                 "eos_token_id": stop_token_ids(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                 **sampling_arguments(temperature, top_p)}
    result: dict[str, Any] = {}

    def generate() -> None:
        try:
            if threads:
                torch.set_num_threads(threads)
            with torch.no_grad():
                result["output"] = model.generate(**arguments)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller below
            result["error"] = exc
            streamer.end()

    started = time.perf_counter()
    thread = threading.Thread(target=generate, name="generate", daemon=True)
    thread.start()
    for text in streamer:
        if text:
            on_text(text)
    thread.join()
    if "error" in result:
        raise result["error"]
    tokens = int(result["output"].shape[1] - ids.shape[1])
    reason = "stopped" if should_stop() else ("length" if tokens >= max_new_tokens else "end")
    return {"reason": reason, "tokens": tokens, "seconds": round(time.perf_counter() - started, 3),
            "trimmed": trimmed}
