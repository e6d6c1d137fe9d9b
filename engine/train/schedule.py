"""The learning-rate schedule on resume: a resumed run may train at another peak learning rate.

A checkpoint restores the scheduler and optimizer with the peak they were made with; when the
resumed run's ``training.learning_rate`` differs, ``rebase`` moves the schedule to the new peak at
the step it is at (the warm-up and cosine shape stay). An unchanged peak is left alone, so a plain
resume stays exact.
"""

from __future__ import annotations

from typing import Any


def rebase(scheduler: Any, optimizer: Any, peak: float) -> float | None:
    """Move a restored ``LambdaLR`` schedule to ``peak``; returns the old peak, or None when unchanged."""
    if all(base == peak for base in scheduler.base_lrs):
        return None
    old = scheduler.base_lrs[0]
    scheduler.base_lrs = [peak] * len(scheduler.base_lrs)
    factors = [fn(scheduler.last_epoch) for fn in scheduler.lr_lambdas]
    for group, factor in zip(optimizer.param_groups, factors, strict=True):
        group["initial_lr"], group["lr"] = peak, peak * factor
    return float(old)
