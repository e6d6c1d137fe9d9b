"""Build the built-in base model: train a tokenizer, build the shape, pre-train it briefly.

Fine-tuning a randomly initialised network teaches it next to nothing, so the first time the
built-in base is needed it is pre-trained (full training, packed blocks) on the corpus the project
ships. The result is an ordinary ``save_pretrained`` folder (model + tokenizer), written to a
temporary folder and renamed into place.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from engine.builtin import MARKER, SHIPPED_DIR, corpus_path, file_checksums, source_hash
from engine.config import load_model_shape
from engine.data.tokenizer import train_bpe_tokenizer
from engine.events import Log, Stage, Step
from engine.stages import StageTicker
from engine.train import precision
from engine.train.evaluate import autocast
from engine.train.model import device

Emit = Callable[[Any], None]


def build_base(name: str, folder: Path, emit: Emit, should_stop: Callable[[], bool] = lambda: False,
               shape: dict[str, Any] | None = None, save_dtype: torch.dtype | None = None) -> Path:
    """Build built-in base ``name`` (or the given ``shape``) into ``folder``; returns ``folder``.

    ``save_dtype`` (e.g. bf16 for the shipped copy) casts the weights before they are saved.
    """
    shape = shape or load_model_shape(name)
    lines = [line for line in corpus_path(shape).read_text(encoding="utf-8").splitlines() if line.strip()]
    emit(Log("info", f"training a {shape['tokenizer']['vocab_size']}-token tokenizer on {len(lines)} lines"))
    emit(Stage("training_tokenizer"))
    tokenizer = train_bpe_tokenizer(lines, shape["tokenizer"]["vocab_size"],
                                    shape["tokenizer"].get("min_frequency", 2))
    model = _build_model(shape, tokenizer)
    emit(Log("info", f"pre-training {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters"))
    stream = _token_stream(tokenizer, lines)
    final_loss = _pretrain(model, stream, shape["pretrain"], emit, should_stop)
    emit(Stage("saving_model", detail=str(folder)))
    tmp = folder.parent / f".tmp-{folder.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    (model.to(save_dtype) if save_dtype is not None else model).save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    (tmp / MARKER).write_text(json.dumps({"name": name, "final_loss": final_loss,
                                          "steps": shape["pretrain"]["steps"], "built_at": time.time()}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def _build_model(shape: dict[str, Any], tokenizer: Any) -> Any:
    """A freshly initialised Llama of the given shape, seeded."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(shape["pretrain"].get("seed", 0))
    dims = {**shape["shape"], "vocab_size": len(tokenizer)}
    config = LlamaConfig(**dims, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def _token_stream(tokenizer: Any, lines: list[str]) -> torch.Tensor:
    """The corpus as one long token stream, documents separated by ``<|endoftext|>``."""
    separator = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    ids: list[int] = []
    for encoded in tokenizer(lines, add_special_tokens=False)["input_ids"]:
        ids.extend(encoded)
        ids.append(separator)
    return torch.tensor(ids, dtype=torch.long)


def _pretrain(model: Any, stream: torch.Tensor, settings: dict[str, Any], emit: Emit,
              should_stop: Callable[[], bool]) -> float:
    """Full training on random blocks of the stream; returns the last logged loss."""
    from transformers import get_cosine_schedule_with_warmup

    run_on = device()
    model.to(run_on).train()
    hardware = precision.detect(run_on)
    choice = precision.choose(settings.get("precision", "auto"), hardware)
    precision.announce(choice, hardware, emit)
    steps, size, seq = settings["steps"], settings["batch_size"], settings["seq_len"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["learning_rate"], weight_decay=0.01)
    schedule = get_cosine_schedule_with_warmup(optimizer, settings.get("warmup_steps", 0), steps)
    generator = torch.Generator().manual_seed(settings.get("seed", 0))
    started, loss_value = time.perf_counter(), float("nan")
    ticker = StageTicker(emit, "building_base", steps)
    for step in range(1, steps + 1):
        starts = torch.randint(0, len(stream) - seq - 1, (size,), generator=generator)
        batch = torch.stack([stream[s:s + seq] for s in starts]).to(run_on)
        with autocast(choice.precision, run_on):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 10 == 0 or step == steps:
            loss_value = float(loss.detach())
            elapsed = time.perf_counter() - started
            emit(Step(step=step, total_steps=steps, epoch=0.0, loss=loss_value,
                      lr=schedule.get_last_lr()[0], grad_norm=float(grad_norm),
                      tokens_per_s=step * size * seq / elapsed, elapsed_s=elapsed, train_s=elapsed))
        ticker(step)
        if should_stop():
            raise KeyboardInterrupt
    return loss_value


def ship_base(name: str, shipped_dir: Path = SHIPPED_DIR, emit: Emit = print) -> Path:
    """Build base ``name`` into the shipped folder (bf16), its marker naming source and checksums."""
    folder = build_base(name, shipped_dir / name, emit, save_dtype=torch.bfloat16)
    marker = json.loads((folder / MARKER).read_text())
    marker.update(source=source_hash(name), files=file_checksums(folder))
    (folder / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.train.pretrain NAME``: rebuild the shipped base (``make base``)."""
    import argparse

    from engine.quiet import quiet_libraries

    parser = argparse.ArgumentParser(prog="python -m engine.train.pretrain")
    parser.add_argument("name", nargs="?", default="tiny-llama", help="a built-in model of config/models/")
    args = parser.parse_args(argv)
    quiet_libraries()
    folder = ship_base(args.name, emit=_print_event)
    print(f"shipped base written to {folder}")
    return 0


def _print_event(event: Any) -> None:
    """A Step or Log event as one line of ``make base`` output (others, stages too, are left out)."""
    if isinstance(event, Step):
        print(f"step {event.step}/{event.total_steps}  loss {event.loss:.4f}  tok/s {event.tokens_per_s:,.0f}",
              flush=True)
    elif isinstance(event, Log):
        print(event.message, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
