"""Data pipeline benchmark: ratios against a reference measured in the same run.

1. Throughput: ``engine.data.pipeline.prepare`` (read, validate, render, tokenize in
   ``data.num_workers`` processes, 0 = one per core, and cache) plus
   packing every batch, against ``datasets.load_dataset("json").map(batched=True, num_proc=2)``
   rendering with ``apply_chat_template`` and tokenizing, on the same generated chat JSONL and
   tokenizer. Goal >= 1.0x.
2. Warm cache: time to the first batch on a second run. Goal <= 2 s.
3. Peak RSS streaming 1x and 4x the data (each in a fresh process). Goal ratio <= 1.1.
4. Pad share of computed tokens with packing. Goal <= 2 %.

    python bench/data_pipeline.py                # ~200 MB, as the issue asks (minutes)
    python bench/data_pipeline.py --size-mb 20   # a quick run

Writes bench/results/data_pipeline.json.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEMORY_MIB = 16
"""cache.memory_size for the runs: small, so the RSS test shows streaming, not the hot-shard LRU."""
WORDS = ("the of and to in is was for on that with as by at from this which are be an it has "
         "river city number market garden window system paper music travel winter summer light "
         "history station table letter answer question engine bridge forest").split()


def generate(path: Path, size_mb: float, seed: int = 0) -> int:
    """Write a chat JSONL of about ``size_mb`` MB with replies of 30-500 tokens; returns records."""
    rng, target, written, count = random.Random(seed), size_mb * 1e6, 0, 0
    with path.open("w", encoding="utf-8") as handle:
        while written < target:
            a, b = rng.randint(0, 99), rng.randint(0, 99)
            context = " ".join(rng.choices(WORDS, k=rng.randint(10, 300)))
            record = {"messages": [{"role": "user", "content": f"{context}\nWhat is {a} + {b}?"},
                                   {"role": "assistant", "content": f"{a} + {b} = {a + b}. " +
                                    " ".join(rng.choices(WORDS, k=rng.randint(5, 120)))}]}
            line = json.dumps(record) + "\n"
            handle.write(line)
            written += len(line)
            count += 1
    return count


def make_tokenizer(data: Path, folder: Path) -> Path:
    """Train a byte-level BPE tokenizer (vocab 4000) on the data's first 20k lines."""
    from engine.data.tokenizer import train_bpe_tokenizer

    with data.open(encoding="utf-8") as handle:
        lines = [json.loads(line)["messages"][0]["content"] for _, line in zip(range(20000), handle, strict=False)]
    train_bpe_tokenizer(lines, 4000).save_pretrained(str(folder))
    return folder


def run_ours(data: Path, tokenizer_dir: Path, cache_dir: Path) -> dict[str, float]:
    """prepare() into ``cache_dir`` then build every packed batch; seconds, pad share, RSS."""
    from engine.config import Config
    from engine.data.batching import Batches
    from engine.data.parallel import worker_count
    from engine.data.pipeline import prepare
    from engine.data.token_cache import TokenCache
    from engine.train.model import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    config = Config()
    config.data.packing, config.data.pack_length, config.data.max_length = True, 2048, 2048
    config.training.batch_size = 8
    started = time.perf_counter()
    cache = TokenCache(cache_dir, None, memory_size_mib=MEMORY_MIB)
    prepared = prepare([data], tokenizer, config, cache)
    batches = Batches.from_config(prepared.dataset, config, tokenizer.pad_token_id)
    first = None
    real = computed = 0
    stream = batches.prefetched(4)
    for _ in range(batches.batches_per_epoch()):
        batch = next(stream)
        first = first or time.perf_counter() - started
        real, computed = real + batch.real_tokens, computed + batch.computed_tokens
    stream.close()
    return {"seconds": time.perf_counter() - started, "first_batch_s": first or 0.0,
            "samples": len(prepared.dataset), "tokens": prepared.dataset.total_tokens,
            "pad_share": 1 - real / computed, "from_cache": prepared.from_cache,
            "workers": worker_count(config.data.num_workers),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_reference(data: Path, tokenizer_dir: Path, cache_dir: Path) -> dict[str, float]:
    """datasets.load_dataset + map(batched=True, num_proc=2): render and tokenize."""
    import datasets
    from transformers import AutoTokenizer

    datasets.disable_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))

    def tokenize(batch: dict) -> dict:
        texts = [tokenizer.apply_chat_template(m, tokenize=False) for m in batch["messages"]]
        return tokenizer(texts, add_special_tokens=False)

    started = time.perf_counter()
    table = datasets.load_dataset("json", data_files=str(data), split="train", cache_dir=str(cache_dir))
    table = table.map(tokenize, batched=True, num_proc=2, remove_columns=["messages"])
    return {"seconds": time.perf_counter() - started, "samples": len(table)}


def child(args: argparse.Namespace) -> None:
    """Run one measurement in this process and print it as JSON."""
    run = run_ours if args.child == "ours" else run_reference
    print(json.dumps(run(Path(args.data), Path(args.tokenizer), Path(args.cache))))


def measure(kind: str, data: Path, tokenizer: Path, cache: Path) -> dict[str, float]:
    """One measurement in a fresh process (so RSS and imports are its own)."""
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--data", str(data), "--tokenizer",
                          str(tokenizer), "--cache", str(cache)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Generate data, measure, print ratios and write bench/results/data_pipeline.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=200.0)
    for name in ("--child", "--data", "--tokenizer", "--cache"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data, data4 = tmp / "chat.jsonl", tmp / "chat4.jsonl"
        records = generate(data, args.size_mb)
        generate(data4, args.size_mb * 4, seed=1)
        tokenizer = make_tokenizer(data, tmp / "tok")
        load_before = os.getloadavg()[0]
        reference = measure("reference", data, tokenizer, tmp / "hf-cache")
        cold = measure("ours", data, tokenizer, tmp / "cache")
        warm = measure("ours", data, tokenizer, tmp / "cache")
        big = measure("ours", data4, tokenizer, tmp / "cache4")
    results = {"size_mb": args.size_mb, "records": records, "reference": reference, "cold": cold,
               "warm": warm, "four_x": big, "throughput_ratio": reference["seconds"] / cold["seconds"],
               "warm_first_batch_s": warm["first_batch_s"], "rss_ratio_4x": big["peak_rss_mb"] / cold["peak_rss_mb"],
               "pad_share": cold["pad_share"], "cpus": os.cpu_count(),
               "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    print(f"data: {args.size_mb:g} MB, {records} chat records, {cold['tokens']} tokens")
    print(f"throughput: ours {cold['seconds']:.1f} s vs datasets.map(num_proc=2) {reference['seconds']:.1f} s"
          f" -> {results['throughput_ratio']:.2f}x (goal >= 1.0)")
    print(f"warm cache: first batch after {warm['first_batch_s']:.2f} s (goal <= 2 s)")
    print(f"peak RSS: 1x {cold['peak_rss_mb']:.0f} MB, 4x {big['peak_rss_mb']:.0f} MB -> "
          f"{results['rss_ratio_4x']:.2f} (goal <= 1.1)")
    print(f"machine: {os.cpu_count()} CPUs, load average {results['load_avg_1min']} (before, after)")
    print(f"pad share with packing: {100 * cold['pad_share']:.2f} % (goal <= 2 %)")
    from bench.common import write_result

    print(f"wrote {write_result('data_pipeline', results)}")


if __name__ == "__main__":
    main()
