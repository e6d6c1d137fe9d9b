"""Runs side by side: total training throughput of two default runs started together vs one alone.

Every run is a real worker started through the ``Engine`` facade, the default config (LoRA on the
built-in base, ``precision = "auto"``, ``resources.threads = 0``) on the shipped chat samples,
``--steps`` optimizer steps, no evaluation, generation or checkpoint on the way. A run's
training window is read from its stored Step events (the first step's time less its elapsed
time, to the last step's time), so start-up (imports, model load) is left out.

1. One run alone: window ``t1``.
2. Two runs started at the same moment: makespan ``t2`` from the earlier window's start to the
   later window's end. Both train the same tokens as the lone run, so the total throughput
   ratio is ``2 * t1 / t2``. Goal >= 0.9.
3. The same pair with the thread budget off (``resources.threads`` = every physical core each,
   torch's default): the behaviour before the budget, for reference, over ``--reference-steps``
   steps (it collapses: 100 steps took 446 s where the pair with the budget took 43 s), its
   ratio against the lone run's time scaled to as many steps.

    python bench/side_by_side.py               # 100 steps a run (about 2-3 minutes on 2 cores)
    python bench/side_by_side.py --steps 40    # quicker

Writes bench/results/side_by_side.json (with the CPU it ran on).
"""

from __future__ import annotations

import argparse
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


def start(engine: Engine, steps: int, threads: int) -> str:
    """Start one default training run of ``steps`` steps; returns its id."""
    overrides = [f"training.max_steps={steps}", "training.log_steps=1", "eval.steps=0",
                 "eval.generate_samples=0", "data.validation_split=0.0", f"checkpoint.save_steps={steps}",
                 f"resources.threads={threads}"]
    return engine.start_training(DATA, load_config(overrides=overrides))


def wait(engine: Engine, run_ids: list[str], limit_s: float = 1800) -> None:
    """Wait until every run has ended; fail loudly if one did not finish."""
    deadline = time.monotonic() + limit_s
    while any(engine.get_run(r).status in LIVE_STATUSES for r in run_ids):
        if time.monotonic() > deadline:
            raise SystemExit(f"runs {run_ids} still live after {limit_s:.0f} s")
        time.sleep(0.5)
    for run_id in run_ids:
        run = engine.get_run(run_id)
        if run.status != "finished":
            raise SystemExit(f"run {run_id} ended {run.status}: {run.error}")


def window(engine: Engine, run_id: str) -> tuple[float, float, int]:
    """(start, end, threads) of a run's training, from its stored Step events."""
    steps = [(s.time, s.event) for s in engine.store.events(run_id, limit=100_000) if isinstance(s.event, Step)]
    first_time, first = steps[0]
    runtime = engine.get_run(run_id).runtime or {}
    return first_time - first.elapsed_s, steps[-1][0], int(runtime.get("threads", 0))


def pair(engine: Engine, steps: int, threads: int) -> dict[str, Any]:
    """Two runs started together; their makespan and the threads each ended with."""
    runs = [start(engine, steps, threads), start(engine, steps, threads)]
    wait(engine, runs)
    windows = [window(engine, r) for r in runs]
    makespan = max(w[1] for w in windows) - min(w[0] for w in windows)
    return {"makespan_s": makespan, "windows_s": [w[1] - w[0] for w in windows],
            "threads_at_end": [w[2] for w in windows]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--reference-steps", type=int, default=20, help="steps of the pair without the budget")
    parser.add_argument("--skip-reference", action="store_true", help="leave out the pair without the budget")
    args = parser.parse_args()
    cores = physical_cores()
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Workspace(Path(tmp) / "ws"))
        alone = start(engine, args.steps, 0)
        wait(engine, [alone])
        begin, end, threads = window(engine, alone)
        t1 = end - begin
        print(f"one run alone: {t1:.1f} s for {args.steps} steps ({threads} threads)")
        budget = pair(engine, args.steps, 0)
        ratio = 2 * t1 / budget["makespan_s"]
        print(f"two together, thread budget: makespan {budget['makespan_s']:.1f} s -> total throughput "
              f"{ratio:.2f}x one run (goal >= {GOAL})")
        result: dict[str, Any] = {"steps": args.steps, "physical_cores": cores, "alone_s": t1,
                                  "alone_threads": threads, "budget": {**budget, "ratio": ratio}, "goal": GOAL}
        if not args.skip_reference:
            old = pair(engine, args.reference_steps, cores)
            old["ratio"] = 2 * t1 * args.reference_steps / args.steps / old["makespan_s"]
            old["steps"] = args.reference_steps
            print(f"two together, {cores} threads each (no budget), {args.reference_steps} steps: makespan "
                  f"{old['makespan_s']:.1f} s -> "
                  f"{old['ratio']:.2f}x")
            result["no_budget"] = old
        engine.close()
    print(f"wrote {write_result('side_by_side', result)}")


if __name__ == "__main__":
    main()
