"""DPO against TRL's ``DPOTrainer``: per-step loss parity, real tokens/s, held-out reward accuracy.

Both train the same pairs of ``data/samples/preference_train.jsonl`` (chosen = the right answer,
rejected = another sample's) on the built-in base (the shipped pre-built one): LoRA r 16 on all
linear layers, no dropout, lr 1e-3 cosine without warm-up, batch 8, beta 0.1, sigmoid loss,
max length 128, fp32, ``--threads`` torch threads, the reference being the base with the adapter
switched off in both, no gradient checkpointing in either (TRL's default turns it on). The
samples come from our token cache in our (unshuffled) order and go to TRL already tokenized
(``prompt_ids`` / ``chosen_ids`` / ``rejected_ids``, its sampler made sequential), so both
see the same tokens in the same batches; the LoRA weights start from the
same seed (checked equal). Both compute in fp32: TRL's ``DPOConfig`` defaults to ``bf16=True``,
which on a CPU with bf16 makes accelerate wrap the model in bf16 autocast (the cause of an earlier
0.2 % gradient gap at step 1 and a 1e-2 loss gap by step 30), so the bench sets ``bf16=False``.

1. Parity: ``--steps`` steps (default 30) of our padded pairs (``preference.packing = false``,
   TRL's batch form) against TRL; the largest relative difference of the per-step losses.
   Goal <= 1e-4.
2. Speed: real (non-pad) tokens of both sequences of every pair per second over those steps,
   the first two left out as warm-up: ours with our default DPO settings (pairs packed, the
   prompt computed once) against TRL, in ``--rounds`` rounds taking turns (ours, TRL, TRL,
   ours...), since the machine's load moves more than the gap between rounds; the ratio of the
   medians. Our padded run of step 1 is reported beside it. Goal ours >= 1.5x TRL.
3. Accuracy: ``--accuracy-steps`` steps (default 60), then each evaluates the 5 % held out:
   reward accuracy and margin. Goal ours >= TRL - 0.05.
4. Reference memory: resident memory added by setting up DPO's reference model, the adapter
   switched off (lora) against a frozen copy of the base (full), and the share of a packed
   step spent in the reference forward (what caching reference log-probs could save at most).

    python bench/dpo_parity.py                 # about 5-8 minutes on 2 cores, one thread
    python bench/dpo_parity.py --steps 10 --rounds 1 --accuracy-steps 0

Needs TRL (``pip install trl``; ``make bench`` installs it), a reference only, not a dependency.
Writes bench/results/dpo_parity.json.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402

DATA = ROOT / "data" / "samples" / "preference_train.jsonl"
SEED, BATCH, LR, BETA, MAX_LENGTH, RANK = 42, 8, 1e-3, 0.1, 128, 16
GOALS = {"max_relative_difference": 1e-4, "speed_ratio": 1.5, "accuracy_gap": 0.05}


def base_model(folder: Path) -> Path:
    """The shipped pre-built base, copied into ``folder``."""
    from engine.builtin import base_dir, install_shipped

    target = base_dir(folder, "tiny-llama")
    if not install_shipped("tiny-llama", target):
        raise SystemExit("dpo_parity: the shipped base does not match config/models/tiny-llama.toml (make base)")
    return target


def our_config(steps: int, packing: bool = True) -> Any:
    """The DPO run's config, as the module docstring says (``packing``: pairs packed, our default)."""
    from engine.config import Config

    config = Config()
    return replace(
        config,
        preference=replace(config.preference, packing=packing),
        data=replace(config.data, max_length=MAX_LENGTH, shuffle=False, packing=False, validation_split=0.05),
        training=replace(config.training, objective="dpo", method="lora", max_steps=steps, batch_size=BATCH,
                         learning_rate=LR, warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, log_steps=1,
                         seed=SEED, precision="fp32"),
        lora=replace(config.lora, r=RANK, alpha=2 * RANK, dropout=0.0, target_modules="auto"),
        dpo=replace(config.dpo, beta=BETA, loss_type="sigmoid"),
        checkpoint=replace(config.checkpoint, save_steps=10**6, keep_last_n=1),
        eval=replace(config.eval, steps=0, generate_samples=0),
    )


def prepared(model_dir: Path, config: Any, cache: Path) -> tuple[Any, Any, Any]:
    """(tokenizer, train, held-out) samples through our pipeline and token cache."""
    from engine.data.pipeline import prepare
    from engine.data.token_cache import TokenCache
    from engine.train.model import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    data = prepare([DATA], tokenizer, config, TokenCache(cache), workers=1)
    train, held = data.split(config.data.validation_split, config.training.seed)
    return tokenizer, train, held


def ours(model_dir: Path, config: Any, tokenizer: Any, train: Any, held: Any, out: Path,
         evaluate: bool) -> dict[str, Any]:
    """Our recipe: per-step losses, the timed steps' seconds and, if asked, the held-out metrics."""
    from engine.events import Step
    from engine.train.methods import load_for_method
    from engine.train.recipe import FineTune, RecipeData

    events: list[Any] = []
    marks: list[float] = []
    recipe = FineTune(config, load_for_method(model_dir, config),
                      RecipeData(train, held, tokenizer.pad_token_id, len(tokenizer)), out, events.append)
    recipe.step_hooks.append(lambda _: marks.append(time.perf_counter()))
    recipe.setup()
    recipe.train()
    steps = [e for e in events if isinstance(e, Step)]
    result = {"losses": [e.loss for e in steps], "grad_norms": [e.grad_norm for e in steps],
              "seconds": marks[-1] - marks[1]}
    if evaluate:
        recipe.evaluate()
        last = [e for e in events if type(e).__name__ == "Eval"][-1]
        result.update(eval_loss=last.eval_loss, **{f"eval_{k}": float(v) for k, v in last.metrics.items()})
    return result


def trl_rows(samples: Any) -> list[dict[str, list[int]]]:
    """Our cached pairs as TRL's tokenized rows: the shared prompt, each side's trained tokens."""
    from engine.objectives.preference import split_pair

    rows = []
    for index in range(len(samples)):
        (chosen, chosen_trained), (rejected, rejected_trained) = split_pair(*samples.raw(index))
        sides = []
        for ids, trained in ((chosen, chosen_trained), (rejected, rejected_trained)):
            where = [i for i, t in enumerate(trained) if t]
            sides.append((ids[:where[0]].tolist(), ids[where[0]:where[-1] + 1].tolist()))
        if sides[0][0] != sides[1][0]:
            raise SystemExit(f"dpo_parity: pair {index} has different prompts on its two sides")
        rows.append({"prompt_ids": sides[0][0], "chosen_ids": sides[0][1], "rejected_ids": sides[1][1]})
    return rows


def trl(model_dir: Path, train: list[dict[str, list[int]]], held: list[dict[str, list[int]]], pad_id: int,
        steps: int, evaluate: bool) -> dict[str, Any]:
    """TRL's DPOTrainer on the same rows, in order: per-step losses, seconds, held-out metrics."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import SequentialSampler
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="sdpa")
    torch.manual_seed(SEED)
    model = get_peft_model(model, LoraConfig(r=RANK, lora_alpha=2 * RANK, lora_dropout=0.0,
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    losses: list[float] = []
    grad_norms: list[float] = []
    marks: list[float] = []

    class Record(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            if logs and "grad_norm" in logs:
                grad_norms.append(float(logs["grad_norm"]))

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            marks.append(time.perf_counter())

    class InOrder(DPOTrainer):
        def _get_train_sampler(self, *args: Any, **kwargs: Any) -> Any:
            return SequentialSampler(self.train_dataset)

        def compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            loss = super().compute_loss(model, inputs, *args, **kwargs)
            if self.model.training:  # the logged loss is rounded to 4 digits: keep the exact one
                losses.append(float((loss[0] if isinstance(loss, tuple) else loss).detach()))
            return loss

        def _prepare_dataset(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:
            return dataset  # already tokenized by our pipeline

    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(output_dir=out, per_device_train_batch_size=BATCH, per_device_eval_batch_size=BATCH,
                         max_steps=steps, learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=0,
                         weight_decay=0.0, max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[],
                         use_cpu=True, bf16=False, seed=SEED, beta=BETA, max_length=None, dataloader_num_workers=0,
                         disable_tqdm=True, remove_unused_columns=False, gradient_checkpointing=False)
        trainer = InOrder(model=model, args=args, train_dataset=Dataset.from_list(train),
                          eval_dataset=Dataset.from_list(held) if evaluate else None,
                          processing_class=AutoTokenizer.from_pretrained(str(model_dir)), callbacks=[Record()])
        trainer.train()
        result: dict[str, Any] = {"losses": losses, "grad_norms": grad_norms, "seconds": marks[-1] - marks[1]}
        if evaluate:
            metrics = trainer.evaluate()
            result.update(eval_loss=metrics.get("eval_loss"),
                          eval_reward_accuracy=metrics.get("eval_rewards/accuracies"),
                          eval_reward_margin=metrics.get("eval_rewards/margins"))
    return result


def pair_tokens(rows: list[dict[str, list[int]]], first: int, steps: int) -> int:
    """Real tokens of both sequences of the pairs in optimizer steps ``first`` .. ``steps`` (0-based)."""
    chosen = rows[first * BATCH:steps * BATCH]
    return sum(2 * len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in chosen)


def attach_memory(model_dir: Path, config: Any, method: str) -> dict[str, Any]:
    """In a fresh process: resident memory added by setting up DPO's reference for ``method``."""
    import copy
    import gc

    import psutil

    from engine.objectives import make
    from engine.train.methods import load_for_method, prepare_for_method

    run = replace(config, training=replace(config.training, method=method))
    model = prepare_for_method(load_for_method(model_dir, run), run)
    objective = make(run)
    gc.collect()
    before = psutil.Process().memory_info().rss
    objective.attach(model, lambda: copy.deepcopy(model))
    gc.collect()
    frozen = objective.reference.copy
    return {"reference": "frozen copy" if frozen is not None else "adapter off",
            "rss_added_mib": (psutil.Process().memory_info().rss - before) / 2**20,
            "copy_parameters_mib": sum(p.numel() * p.element_size() for p in frozen.parameters()) / 2**20
            if frozen is not None else 0.0}


def reference_memory(model_dir: Path, config: Any, train: Any, pad_id: int, batches: int = 8) -> dict[str, Any]:
    """Memory DPO's reference adds (adapter off vs frozen copy) and its forward's share of a packed step."""
    import multiprocessing

    from engine.objectives import make
    from engine.train.methods import load_for_method, prepare_for_method

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: dict[str, Any] = {m: pool.apply(attach_memory, (model_dir, config, m)) for m in ("lora", "full")}
    model = prepare_for_method(load_for_method(model_dir, config), config)
    objective = make(config)
    objective.attach(model, lambda: None)
    inputs = [objective.collate([train.raw(i) for i in range(b * BATCH, (b + 1) * BATCH)], pad_id)
              for b in range(batches)]
    started = time.perf_counter()
    for batch in inputs:
        objective.compute(model, batch).loss.backward()
    step = time.perf_counter() - started
    started = time.perf_counter()
    for batch in inputs:
        objective.reference.logps(model, batch)
    result["reference_forward_share"] = (time.perf_counter() - started) / step
    return result


def speed_rounds(args: Any, run_ours: Any, run_trl: Any, first_trl: float) -> dict[str, Any]:
    """Seconds of ours (packed) and TRL over ``args.rounds`` rounds taking turns; TRL's first given."""
    ours_s, trl_s = [run_ours()], [first_trl]
    for index in range(1, args.rounds):
        if index % 2:
            ours_s.append(run_ours())
            trl_s.append(run_trl())
        else:
            trl_s.append(run_trl())
            ours_s.append(run_ours())
    return {"ours_seconds": ours_s, "trl_seconds": trl_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="speed rounds, ours and TRL taking turns")
    parser.add_argument("--accuracy-steps", type=int, default=60, help="0 skips the accuracy comparison")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import statistics

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="dpo-parity-") as tmp:
        folder = Path(tmp)
        model_dir = base_model(folder / "models")
        config, padded = our_config(args.steps), our_config(args.steps, packing=False)
        tokenizer, train, held = prepared(model_dir, config, folder / "cache")
        train_rows, held_rows = trl_rows(train), trl_rows(held)
        if len(train_rows) < max(args.steps, args.accuracy_steps) * BATCH:
            raise SystemExit("dpo_parity: not enough pairs for the steps asked")
        a = ours(model_dir, padded, tokenizer, train, held, folder / "ours", evaluate=False)
        b = trl(model_dir, train_rows, held_rows, tokenizer.pad_token_id, args.steps, evaluate=False)
        relative = [abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a["losses"], b["losses"], strict=True)]
        worst = max(range(len(relative)), key=relative.__getitem__)
        print(f"parity over {args.steps} steps (padded pairs): largest relative loss difference "
              f"{relative[worst]:.2e} at step {worst + 1} (ours {a['losses'][worst]:.6f}, "
              f"TRL {b['losses'][worst]:.6f}; goal <= 1e-4)")
        tokens = pair_tokens(train_rows, 2, args.steps)
        rounds = speed_rounds(
            args, lambda: ours(model_dir, config, tokenizer, train, held, folder / "ours-packed", False)["seconds"],
            lambda: trl(model_dir, train_rows, held_rows, tokenizer.pad_token_id, args.steps, False)["seconds"],
            b["seconds"])
        speed = {"ours_tokens_per_s": tokens / statistics.median(rounds["ours_seconds"]),
                 "trl_tokens_per_s": tokens / statistics.median(rounds["trl_seconds"]),
                 "ours_padded_tokens_per_s": tokens / a["seconds"], "tokens": tokens, **rounds,
                 "round_ratios": [t / o for o, t in zip(rounds["ours_seconds"], rounds["trl_seconds"], strict=True)]}
        speed["ratio"] = speed["ours_tokens_per_s"] / speed["trl_tokens_per_s"]
        print(f"speed (medians of {args.rounds} rounds): ours {speed['ours_tokens_per_s']:,.0f} real tok/s "
              f"(packed pairs; padded {speed['ours_padded_tokens_per_s']:,.0f}), TRL "
              f"{speed['trl_tokens_per_s']:,.0f} -> {speed['ratio']:.2f}x (goal >= 1.5; rounds "
              + ", ".join(f"{r:.2f}x" for r in speed["round_ratios"]) + ")")
        result: dict[str, Any] = {"steps": args.steps, "threads": args.threads, "pairs_train": len(train_rows),
                                  "pairs_held_out": len(held_rows), "losses_ours": a["losses"],
                                  "losses_trl": b["losses"], "grad_norms_ours": a["grad_norms"],
                                  "grad_norms_trl": b["grad_norms"], "max_relative_difference": relative[worst],
                                  "speed": speed, "goals": GOALS}
        if args.accuracy_steps:
            longer = replace(config, training=replace(config.training, max_steps=args.accuracy_steps))
            a = ours(model_dir, longer, tokenizer, train, held, folder / "ours-acc", evaluate=True)
            b = trl(model_dir, train_rows, held_rows, tokenizer.pad_token_id, args.accuracy_steps, evaluate=True)
            accuracy = {"ours": {k: v for k, v in a.items() if k.startswith("eval")},
                        "trl": {k: v for k, v in b.items() if k.startswith("eval")}}
            result["accuracy"] = {"steps": args.accuracy_steps, **accuracy}
            print(f"held-out after {args.accuracy_steps} steps: reward accuracy ours "
                  f"{a['eval_reward_accuracy']:.3f}, TRL {b['eval_reward_accuracy']:.3f} (goal: ours >= TRL - 0.05); "
                  f"margin ours {a.get('eval_reward_margin', math.nan):.3f}, TRL {b['eval_reward_margin']:.3f}")
        memory = reference_memory(model_dir, config, train, tokenizer.pad_token_id)
        result["reference_memory"] = memory
        print(f"reference model: adapter off (lora) adds {memory['lora']['rss_added_mib']:.1f} MiB resident, "
              f"a frozen copy (full) {memory['full']['rss_added_mib']:.1f} MiB "
              f"({memory['full']['copy_parameters_mib']:.1f} MiB of weights); its forward is "
              f"{memory['reference_forward_share']:.0%} of a packed step's time")
    print(f"wrote {write_result('dpo_parity', result)}")


if __name__ == "__main__":
    main()
