"""Training memory benchmark: peak RSS training from 1x and 4x the data, warm time to first step.

Each measurement is a training run in a fresh process, through the path ``engine.jobs.train_job``
takes: ``prepare_run_data`` (validate, tokenize into the workspace token cache, split, link),
``load_for_method``, ``FineTune`` with LoRA, ``setup``, then ``--steps`` optimizer steps. The data
are short chat samples (about 130 bytes, 40 tokens each), so the per-sample bookkeeping (lengths,
offsets, split indices, epoch plans) is what grows with the data, not the tokens.

1. Cold: prepare the 1x set (``--samples``) and the 4x set into the token cache (and train).
2. Warm: train from the cached 1x and 4x sets; peak RSS 4x / 1x. Goal <= 1.1.
3. Warm: time from the start of data preparation to the end of the first optimizer step on the
   4x set (1 M samples by default). Goal <= 2 s. Printed with its parts: data ready (a cache
   hit still fingerprints the file), then model load, setup and the step. Beside it, in the same
   run: a bare script doing only the same imports, loads and one step (``library_floor``, the
   reference that figure cannot go under), and both again with bitsandbytes and torchao imported
   as they were before the worker hid them from LoRA runs (``engine/unused_libs.py``).

    python bench/train_memory.py                     # 250k and 1 M samples (2-3 minutes)
    python bench/train_memory.py --samples 20000     # a quick run (under a minute)
    python bench/train_memory.py --keep /tmp/tm      # keep data and caches for the next call
    python bench/train_memory.py --threads 1         # on a busy machine: torch's one thread per
                                                     # core can make each step 10-30x slower there

The runs use the default config (batch 16, LoRA) but for ``cache.memory_size``, which is
``--memory-mib`` (default 16, as in bench/data_pipeline.py): the token cache keeps whole shards in
memory while they fit that budget, so with the default 512 MiB a 4x set that fits is held in
memory up to the budget (by design, bounded by the setting, not by the data); a small budget
shows what streaming itself costs. ``--memory-mib 512`` measures the default.

Writes bench/results/train_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402

GOAL_RSS_RATIO = 1.1
GOAL_WARM_FIRST_STEP_S = 2.0
WORDS = ("the of and to in is was for on that with as by at from this which are be an it has "
         "river city number market garden window system paper music travel winter summer light").split()


def generate(path: Path, count: int, seed: int) -> None:
    """Write ``count`` short chat samples (a sum and a few words, about 130 bytes each)."""
    rng = random.Random(seed)
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for _ in range(count):
            a, b = rng.randint(0, 999), rng.randint(0, 999)
            words = " ".join(rng.choices(WORDS, k=rng.randint(1, 4)))
            record = {"messages": [{"role": "user", "content": f"{words}: what is {a} + {b}?"},
                                   {"role": "assistant", "content": f"{a} + {b} = {a + b}"}]}
            handle.write(json.dumps(record) + "\n")
    partial.replace(path)


def make_model(data: Path, folder: Path) -> None:
    """A BPE tokenizer (vocab 2000) trained on the data's first 20k samples and a random tiny Llama."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from engine.config import load_model_shape
    from engine.data.tokenizer import train_bpe_tokenizer

    with data.open(encoding="utf-8") as handle:
        lines = [" ".join(m["content"] for m in json.loads(line)["messages"])
                 for _, line in zip(range(20000), handle, strict=False)]
    tokenizer = train_bpe_tokenizer(lines, 2000)
    torch.manual_seed(0)
    shape = load_model_shape("tiny-llama")["shape"]
    config = LlamaConfig(**{**shape, "vocab_size": len(tokenizer)}, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))


def train_run(data: Path, model_dir: Path, workspace_dir: Path, steps: int, memory_mib: int,
              hide_quantizers: bool) -> dict[str, Any]:
    """Prepare ``data`` through the run's cache and train ``steps`` LoRA steps; times and peak RSS.

    The clock starts once the modules a worker has imported when ``train_job`` begins are in;
    what those functions import lazily (tokenizer and model classes, peft) is timed, as in a run.
    """
    import engine.jobs  # noqa: F401  (the worker's imports before train_job starts)
    from engine.config import Config, config_to_dict
    from engine.train.methods import load_for_method
    from engine.train.model import load_tokenizer
    from engine.train.recipe import FineTune, RecipeData
    from engine.train.run_data import prepare_run_data
    from engine.unused_libs import hide_for_train_job
    from engine.workspace import Workspace, new_run_id

    config = Config()
    config.model.path = str(model_dir)
    config.training.max_steps = steps
    config.checkpoint.save_steps = steps + 1  # only the final checkpoint, as a short run makes
    config.cache.memory_size = memory_mib
    if hide_quantizers:  # as the worker does for a LoRA run
        hide_for_train_job(config_to_dict(config))
    workspace = Workspace(workspace_dir).ensure()
    run_id = new_run_id()
    (workspace.cache_dir / "tokens").mkdir(exist_ok=True)
    cached_before = set(os.listdir(workspace.cache_dir / "tokens"))
    marks: dict[str, float] = {"start": time.perf_counter()}
    tokenizer = load_tokenizer(model_dir)
    marks["tokenizer_loaded"] = time.perf_counter()
    prepared = prepare_run_data(config, {"data": str(data)}, tokenizer, workspace, run_id)
    marks["data_ready"] = time.perf_counter()
    recipe_data = RecipeData(prepared.train, prepared.eval, tokenizer.pad_token_id, len(tokenizer))
    model = load_for_method(model_dir, config)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    marks["model_loaded"] = time.perf_counter()
    recipe = FineTune(config, model, recipe_data, workspace.run_dir(run_id) / "checkpoints", lambda event: None)
    recipe.step_hooks.append(lambda r: marks.setdefault("first_step", time.perf_counter()))
    recipe.setup()
    marks["setup_done"] = time.perf_counter()
    reason = recipe.train()
    marks["end"] = time.perf_counter()
    since = {k: v - marks["start"] for k, v in marks.items()}
    return {"samples": len(prepared.train) + len(prepared.eval), "train_samples": len(prepared.train),
            "tokens": prepared.train.dataset.total_tokens, "cache_memory_mib": config.cache.memory_size,
            "from_cache": prepared.train.dataset.folder.name in cached_before,
            "steps": recipe.progress.step, "reason": reason, "loss_last": recipe.losses[-1],
            "prepare_s": since["data_ready"],
            "data_s": since["data_ready"] - since["tokenizer_loaded"],
            "model_load_s": since["model_loaded"] - since["data_ready"],
            "setup_s": since["setup_done"] - since["model_loaded"],
            "first_step_s": since["first_step"],
            "ready_to_first_step_s": since["first_step"] - since["data_ready"],
            "train_s": since["end"] - since["setup_done"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def library_floor(model_dir: Path, hide_quantizers: bool) -> dict[str, Any]:
    """The reference: a bare script's time to a first LoRA step on this model, no engine and no data.

    The same libraries (and quantizers hidden, or not, as in the engine run), the tokenizer and
    model loaded, peft's LoRA on q/k/v/o, AdamW and one step on a random batch shaped like the
    engine's first (16 samples of about 60 tokens). What the engine adds on top is its own part.
    """
    from engine.unused_libs import hide, unused_quantizers

    if hide_quantizers:
        hide(unused_quantizers("lora", [model_dir]))
    import torch

    started = time.perf_counter()
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = get_peft_model(LlamaForCausalLM.from_pretrained(str(model_dir)),
                           LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch = torch.randint(0, len(tokenizer), (16, 60), generator=torch.Generator().manual_seed(0))
    model(input_ids=batch, labels=batch).loss.backward()
    optimizer.step()
    return {"first_step_s": time.perf_counter() - started}


def measure(data: Path, model_dir: Path, workspace: Path, steps: int, threads: int,
            memory_mib: int, *flags: str) -> dict[str, Any]:
    """One training run (or with ``--floor`` the reference) in a fresh process: its own imports and peak RSS."""
    command = [sys.executable, __file__, "--child", str(data), "--model", str(model_dir),
               "--workspace", str(workspace), "--steps", str(steps), "--memory-mib", str(memory_mib), *flags]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"train_memory: the run on {data.name} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def inputs(folder: Path, samples: int) -> tuple[Path, Path, Path]:
    """The 1x and 4x files and the model folder under ``folder``, made unless already there."""
    folder.mkdir(parents=True, exist_ok=True)
    one, four = folder / f"chat-{samples}.jsonl", folder / f"chat-{4 * samples}.jsonl"
    for path, count, seed in ((one, samples, 0), (four, 4 * samples, 1)):
        if not path.is_file():
            started = time.perf_counter()
            generate(path, count, seed)
            print(f"generated {path.name}: {path.stat().st_size / 1e6:.0f} MB "
                  f"in {time.perf_counter() - started:.0f} s")
    model_dir = folder / "model"
    if not (model_dir / "config.json").is_file():
        make_model(one, model_dir)
    return one, four, model_dir


def report(results: dict[str, Any]) -> None:
    """Print every figure with its goal."""
    cold1, cold4, warm1, warm4 = (results[k] for k in ("cold_1x", "cold_4x", "warm_1x", "warm_4x"))
    for name, run in (("1x", cold1), ("4x", cold4)):
        state = "cache already warm" if run["from_cache"] else "cold"
        print(f"{state} {name} ({run['samples']} samples): prepare {run['prepare_s']:.1f} s, first step at "
              f"{run['first_step_s']:.1f} s, peak RSS {run['peak_rss_mb']:.0f} MB "
              f"(tokenizing workers {run['children_peak_rss_mb']:.0f} MB)")
    print(f"peak RSS training from a warm cache: 1x {warm1['peak_rss_mb']:.0f} MB, 4x {warm4['peak_rss_mb']:.0f} MB"
          f" -> {results['rss_ratio_4x']:.3f} (goal <= {GOAL_RSS_RATIO})")
    print(f"time to first step, warm cache, {warm4['samples']} samples: {warm4['first_step_s']:.2f} s "
          f"(goal <= {GOAL_WARM_FIRST_STEP_S:g} s) = data ready {warm4['prepare_s']:.2f} s (of which the "
          f"cached data {warm4['data_s']:.2f} s, the rest loading the tokenizer) + model "
          f"{warm4['model_load_s']:.2f} s + setup {warm4['setup_s']:.2f} s + step "
          f"{warm4['first_step_s'] - warm4['prepare_s'] - warm4['model_load_s'] - warm4['setup_s']:.2f} s")
    floor, floor_q, warm4_q = results["floor"], results["floor_quantizers"], results["warm_4x_quantizers"]
    print(f"  reference, a bare script (same imports, tokenizer and model load, LoRA, one step on a random "
          f"batch): {floor['first_step_s']:.2f} s; ours / reference {results['ratio_first_step_vs_floor']:.2f}, "
          f"the engine's own part {warm4['first_step_s'] - floor['first_step_s']:.2f} s")
    print(f"  letting transformers and peft import bitsandbytes and torchao (as before the worker hid them): "
          f"ours {warm4_q['first_step_s']:.2f} s, reference {floor_q['first_step_s']:.2f} s")
    print(f"  (1x, {warm1['samples']} samples: {warm1['first_step_s']:.2f} s; "
          f"data ready to first step {warm1['ready_to_first_step_s']:.2f} s vs "
          f"{warm4['ready_to_first_step_s']:.2f} s at 4x)")
    print(f"machine: {os.cpu_count()} CPUs, load average {results['load_avg_1min']} (before, after)")


def run_all(folder: Path, samples: int, steps: int, threads: int, memory_mib: int) -> dict[str, Any]:
    """Generate (or reuse) the inputs, run the four measurements, return the results."""
    one, four, model_dir = inputs(folder, samples)
    workspace = folder / "workspace"
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {"samples_1x": samples, "samples_4x": 4 * samples, "steps": steps,
                               "torch_threads": threads or "default", "cache_memory_mib": memory_mib,
                               "bytes_1x": one.stat().st_size, "bytes_4x": four.stat().st_size}
    for key, path in (("cold_1x", one), ("cold_4x", four), ("warm_1x", one), ("warm_4x", four)):
        started = time.perf_counter()
        results[key] = measure(path, model_dir, workspace, steps, threads, memory_mib)
        print(f"  {key}: {time.perf_counter() - started:.0f} s wall", flush=True)
    for key, flags in (("floor", ("--floor",)), ("warm_4x_quantizers", ("--import-quantizers",)),
                       ("floor_quantizers", ("--floor", "--import-quantizers"))):
        results[key] = measure(four, model_dir, workspace, steps, threads, memory_mib, *flags)
    results.update(rss_ratio_4x=results["warm_4x"]["peak_rss_mb"] / results["warm_1x"]["peak_rss_mb"],
                   warm_first_step_s=results["warm_4x"]["first_step_s"],
                   ratio_first_step_vs_floor=results["warm_4x"]["first_step_s"] / results["floor"]["first_step_s"],
                   goals={"rss_ratio_4x": GOAL_RSS_RATIO, "warm_first_step_s": GOAL_WARM_FIRST_STEP_S},
                   cpus=os.cpu_count(), load_avg_1min=[round(load_before, 2), round(os.getloadavg()[0], 2)])
    return results


def main() -> None:
    """Parse the flags; run one measurement (``--child``) or the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=250_000, help="samples of the 1x set (4x: four times)")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per run")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per run (OMP_NUM_THREADS; 0: torch's default, one per core)")
    parser.add_argument("--memory-mib", type=int, default=16, help="cache.memory_size of the runs (default 16)")
    parser.add_argument("--keep", type=Path, help="folder to keep the data, model and caches in between calls")
    for name in ("--child", "--model", "--workspace"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    for name in ("--floor", "--import-quantizers"):
        parser.add_argument(name, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.floor:
        print(json.dumps(library_floor(Path(args.model), not args.import_quantizers)))
        return
    if args.child:
        print(json.dumps(train_run(Path(args.child), Path(args.model), Path(args.workspace), args.steps,
                                   args.memory_mib, not args.import_quantizers)))
        return
    started = time.perf_counter()
    if args.keep:
        results = run_all(args.keep.resolve(), args.samples, args.steps, args.threads, args.memory_mib)
    else:
        with tempfile.TemporaryDirectory(prefix="train-memory-") as tmp:
            results = run_all(Path(tmp), args.samples, args.steps, args.threads, args.memory_mib)
    results["wall_s"] = time.perf_counter() - started
    report(results)
    print(f"wrote {write_result('train_memory', results)} ({results['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
