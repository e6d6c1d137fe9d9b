"""A new user's first run: ``make train``'s command from an empty workspace, and the warm first step.

1. Cold: from an empty workspace, the command ``make train`` runs (the built-in base, LoRA on
   the shipped chat samples, evaluation on their held-out file, the exact-match report), timed
   from the command's start to its exit. pip install is not part of it. Goal <= 300 s on 2 cores,
   with the fine-tuned model beating the base by >= 10 exact-match points.
2. Warm: the same command again in that workspace (the base and the token cache are there),
   timed from the command's start to the end of the first optimizer step (the first Step
   event's time in the run history; the run is then stopped). Goal <= 5 s. Beside it, in the
   same run: a bare script's time from its start to one LoRA step of the same base (the same
   libraries imported, tokenizer and model loaded), the floor that figure cannot go under.

To see how a machine without native bf16 fares on one that has it, run it with torch held to
its AVX2 kernels (``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``): ``precision = "auto"``
then picks fp32, as on an AVX2-only CPU.

    python bench/first_run.py              # both (the cold run takes minutes)
    python bench/first_run.py --warm-only  # only the warm first step (builds nothing it needs twice)

Writes bench/results/first_run.json (``first_run_avx2.json`` under ATEN_CPU_CAPABILITY=avx2).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402

GOAL_COLD_S = 300.0
GOAL_POINTS = 10.0
GOAL_WARM_S = 5.0
TRAIN = ["train", "data/samples/chat_train.jsonl", "--eval-data", "data/samples/chat_eval.jsonl",
         "--set", "training.epochs=1"]
"""What ``make train`` runs with no DATA_PATH (the Makefile's DEMO_ARGS): keep the two the same."""

FLOOR = """
import time, sys
started = float(sys.argv[2])
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
model = get_peft_model(AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32),
                       LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
batch = torch.randint(0, len(tokenizer), (16, 60), generator=torch.Generator().manual_seed(0))
model(input_ids=batch, labels=batch).loss.backward()
optimizer.step()
print(time.time() - started)
"""


def cli(workspace: Path, *args: str) -> list[str]:
    """The headless command line, in ``workspace``."""
    return [sys.executable, "-m", "llamahome_tui", "--no-ui", "--workspace", str(workspace), *args]


def runs(workspace: Path) -> list[dict[str, Any]]:
    """The run history as ``runs --json`` prints it."""
    done = subprocess.run(cli(workspace, "runs", "--json"), capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def cold(workspace: Path) -> dict[str, Any]:
    """``make train``'s command from an empty workspace: wall time and the exact-match report."""
    started = time.time()
    done = subprocess.run(cli(workspace, *TRAIN), capture_output=True, text=True, cwd=ROOT)
    wall = time.time() - started
    if done.returncode != 0:
        raise SystemExit(f"first_run: train failed (exit {done.returncode}):\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    run = next(r for r in runs(workspace) if r["kind"] == "train")
    metrics, stamps = run["final_metrics"], _stamps(workspace, run["id"])
    builds = [r["id"] for r in runs(workspace) if r["kind"] == "build-base"]
    points = 100 * (metrics["exact_match"] - metrics["exact_match_base"])
    return {"wall_s": wall, "run_id": run["id"], "runtime": run["runtime"], "steps": metrics["steps"],
            "exact_match_base": metrics["exact_match_base"], "exact_match": metrics["exact_match"],
            "points": points, "eval_loss": metrics.get("eval_loss"), "first_loss": metrics.get("first_loss"),
            "last_loss": metrics.get("last_loss"), "builds": builds,
            "first_step_at_s": stamps["first_step"] - started, "last_step_at_s": stamps["last_step"] - started}


def _stamps(workspace: Path, run_id: str) -> dict[str, float]:
    """Times of a run's first and last Step events (from the run history)."""
    from engine.events import Step
    from engine.store import RunStore
    from engine.workspace import Workspace

    with RunStore(Workspace(workspace).db_path) as store:
        steps = [s.time for s in store.events(run_id, limit=1_000_000) if isinstance(s.event, Step)]
    return {"first_step": steps[0], "last_step": steps[-1]} if steps else {"first_step": 0.0, "last_step": 0.0}


def warm(workspace: Path) -> dict[str, Any]:
    """Seconds from the command's start to the end of its first optimizer step, warm workspace."""
    started = time.time()
    args = [*TRAIN, "--max-steps", "2", "--set", "training.log_steps=1", "--set", "eval.generate_samples=0",
            "--set", "eval.steps=0"]
    done = subprocess.run(cli(workspace, *args), capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"first_run: warm train failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    run = runs(workspace)[0]
    return {"first_step_s": _stamps(workspace, run["id"])["first_step"] - started, "runtime": run["runtime"]}


def floor(workspace: Path) -> float:
    """The bare script's seconds from its start to one LoRA step of the workspace's base."""
    base = next(p for p in (workspace / "models").iterdir() if p.is_dir() and not p.name.startswith("."))
    done = subprocess.run([sys.executable, "-c", FLOOR, str(base), str(time.time())], capture_output=True,
                          text=True, cwd=ROOT, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warm-only", action="store_true", help="skip the cold run (needs --workspace)")
    parser.add_argument("--workspace", type=Path, help="a workspace to use (default: a new temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="first-run-") as tmp:
        workspace = (args.workspace or Path(tmp) / "ws").resolve()
        result: dict[str, Any] = {"aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY")}
        if not args.warm_only:
            result["cold"] = first = cold(workspace)
            print(f"cold, empty workspace: {first['wall_s']:.0f} s in all (goal <= {GOAL_COLD_S:.0f} s); first step "
                  f"at {first['first_step_at_s']:.1f} s, last at {first['last_step_at_s']:.0f} s; "
                  f"{first['steps']} steps in {first['runtime']['precision']}; exact match base "
                  f"{100 * first['exact_match_base']:.1f} % -> fine-tuned {100 * first['exact_match']:.1f} % "
                  f"(+{first['points']:.1f} points, goal >= {GOAL_POINTS:.0f}); base builds: {len(first['builds'])}")
        result["warm"] = again = warm(workspace)
        result["floor_s"] = floor(workspace)
        result["ratio_warm_vs_floor"] = again["first_step_s"] / result["floor_s"]
        print(f"warm: first step {again['first_step_s']:.2f} s after the command started (goal <= {GOAL_WARM_S:g} s); "
              f"a bare script to one LoRA step: {result['floor_s']:.2f} s (ours / bare "
              f"{result['ratio_warm_vs_floor']:.2f})")
    result["goals"] = {"cold_s": GOAL_COLD_S, "points": GOAL_POINTS, "warm_first_step_s": GOAL_WARM_S}
    name = "first_run_avx2" if (os.environ.get("ATEN_CPU_CAPABILITY") or "").lower() == "avx2" else "first_run"
    print(f"wrote {write_result(name, result)}")


if __name__ == "__main__":
    main()
