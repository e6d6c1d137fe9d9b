"""A torchrun group against one process on the same global batches: training tokens/s as a ratio.

Every run is a real worker started through the ``Engine`` facade: the default config (LoRA on the
built-in base, ``precision = "auto"``) on the shipped chat samples, ``--steps`` optimizer steps of
a global batch of ``--batch`` samples, no evaluation, generation or checkpoint on the way. A
run's training window is read from rank 0's stored Step events (the first step's time less its
elapsed time, to the last step's time), so start-up (imports, model load, joining the group) is
left out. Both sides train the same global batches, hence the same tokens, so the throughput
ratio is the inverse ratio of the windows.

CPU (the default; goal >= 0.9 on 2 cores):

- one process with ``resources.threads = N`` (N = the physical cores), batch ``--batch``;
- N ranks (``distributed.nproc_per_node = N``, gloo) with one thread each, batch ``--batch / N``.

The two are run in turn ``--rounds`` times and the medians compared, since a shared machine's
noise is larger than the gap being measured. On a machine busy with other work the one process's
two OpenMP threads spin against the other work's threads and collapse (see engine/threads.py)
while single-thread ranks do not, so the ratio is then far above 1 and says little; the load
average at the end is written beside the figures.

GPU (``--device cuda``, not run here: this machine has no GPU): one process on one GPU against
``--gpus`` ranks (NCCL, one GPU each) with ``--strategy`` ddp or fsdp, on a model big enough to
matter (``--model``, a local ``save_pretrained`` folder), e.g.::

    python bench/distributed.py --device cuda --gpus 4 --model ~/models/Qwen2.5-1.5B \\
        --batch 32 --steps 50 --strategy fsdp

The ratio printed is then ``tokens/s of N GPUs / tokens/s of 1 GPU`` (ideal: N).

    python bench/distributed.py                 # 40 steps, 2 rounds (about 6 minutes on 2 cores)
    python bench/distributed.py --steps 20 --rounds 1

Writes bench/results/distributed.json (with the CPU it ran on).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from engine.api import Engine  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.events import Step  # noqa: E402
from engine.store import LIVE_STATUSES  # noqa: E402
from engine.threads import physical_cores  # noqa: E402
from engine.workspace import Workspace  # noqa: E402

GOAL = 0.9
DATA = ROOT / "data" / "samples" / "chat_train.jsonl"


def start(engine: Engine, args: argparse.Namespace, ranks: int, threads: int) -> str:
    """Start one run of ``ranks`` ranks (1: one process) on the same global batches; returns its id."""
    overrides = [f"training.max_steps={args.steps}", "training.log_steps=1", "eval.steps=0",
                 "eval.generate_samples=0", "data.validation_split=0.0", f"checkpoint.save_steps={args.steps}",
                 f"training.batch_size={args.batch // ranks}", f"distributed.nproc_per_node={ranks}",
                 f"distributed.strategy={json.dumps(args.strategy)}"]
    if threads:
        overrides.append(f"resources.threads={threads}")
    if args.model:
        overrides.append(f"model.path={json.dumps(str(Path(args.model).expanduser().resolve()))}")
    return engine.start_training(DATA, load_config(overrides=overrides))


def wait(engine: Engine, run_id: str, limit_s: float = 3600) -> None:
    """Wait until the run has ended; fail loudly if it did not finish."""
    deadline = time.monotonic() + limit_s
    while engine.get_run(run_id).status in LIVE_STATUSES:
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run_id} still live after {limit_s:.0f} s")
        time.sleep(0.5)
    run = engine.get_run(run_id)
    if run.status != "finished":
        raise SystemExit(f"run {run_id} ended {run.status}: {run.error}")


def window(engine: Engine, run_id: str) -> float:
    """Seconds of a run's training, from its stored Step events."""
    steps = [(s.time, s.event) for s in engine.store.events(run_id, limit=100_000) if isinstance(s.event, Step)]
    first_time, first = steps[0]
    return steps[-1][0] - (first_time - first.elapsed_s)


def timed(engine: Engine, args: argparse.Namespace, ranks: int, threads: int) -> float:
    """Train one run to the end; its training window."""
    run_id = start(engine, args, ranks, threads)
    wait(engine, run_id)
    return window(engine, run_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16, help="global batch (samples per optimizer step)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--gpus", type=int, default=2, help="ranks of the group with --device cuda")
    parser.add_argument("--strategy", choices=("ddp", "fsdp"), default="ddp")
    parser.add_argument("--model", help="a local model folder (default: the built-in base)")
    args = parser.parse_args()
    cores = physical_cores()
    ranks = cores if args.device == "cpu" else args.gpus
    one_threads, rank_threads = (cores, 1) if args.device == "cpu" else (0, 0)
    ones, groups = [], []
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Workspace(Path(tmp) / "ws"))
        timed(engine, args, 1, one_threads)  # warm the token cache and the base model: not counted
        for round_ in range(args.rounds):
            ones.append(timed(engine, args, 1, one_threads))
            groups.append(timed(engine, args, ranks, rank_threads))
            print(f"round {round_ + 1}: one process {ones[-1]:.1f} s, {ranks} ranks {groups[-1]:.1f} s "
                  f"({args.steps} steps of {args.batch} samples)")
        engine.close()
    ratio = statistics.median(ones) / statistics.median(groups)
    what = f"{ranks} ranks x {rank_threads} thread vs 1 process x {one_threads} threads" if args.device == "cpu" \
        else f"{ranks} GPUs vs 1 GPU ({args.strategy})"
    print(f"{what}: tokens/s ratio {ratio:.2f} (goal >= {GOAL if args.device == 'cpu' else ranks * 0.9:.1f})")
    result: dict[str, Any] = {"device": args.device, "steps": args.steps, "global_batch": args.batch,
                              "ranks": ranks, "strategy": args.strategy, "one_process_threads": one_threads,
                              "rank_threads": rank_threads, "one_process_s": ones, "group_s": groups,
                              "ratio": ratio, "goal": GOAL if args.device == "cpu" else None,
                              "load_average_1m_at_end": os.getloadavg()[0]}
    print(f"wrote {write_result('distributed' if args.device == 'cpu' else 'distributed_gpu', result)}")


if __name__ == "__main__":
    main()
