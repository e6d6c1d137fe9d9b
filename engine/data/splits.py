"""Deterministic train/validation splits and k-fold splits over sample indices (no torch).

The same ``(count, seed)`` always gives the same split; each part keeps file order.
"""

from __future__ import annotations

import numpy as np


def permutation(count: int, seed: int, epoch: int = 0) -> np.ndarray:
    """A permutation of ``range(count)`` determined by ``(seed, epoch)`` alone."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def split_indices(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, validation)`` indices; validation is ``round(count * fraction)`` (at least 1 when > 0)."""
    if fraction <= 0 or count < 2:
        return np.arange(count), np.zeros(0, dtype=np.int64)
    order = permutation(count, seed)
    cut = max(1, int(round(count * fraction)))
    held = np.sort(order[:cut])
    return np.sort(order[cut:]), held


def kfold_indices(count: int, folds: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, validation)`` indices of fold ``fold`` of ``folds``; the validation parts partition the data."""
    if folds < 2 or not 0 <= fold < folds:
        raise ValueError(f"fold {fold} of {folds}: need folds >= 2 and 0 <= fold < folds")
    parts = np.array_split(permutation(count, seed), folds)
    held = np.sort(parts[fold])
    return np.sort(np.concatenate([p for i, p in enumerate(parts) if i != fold])), held
