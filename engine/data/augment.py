"""Token augmentation on inputs only (off by default; no torch): mask, replace, rotate.

Each sample's noise comes from a generator seeded by ``(seed, epoch, sample index)``, so a
resumed run sees exactly the same augmented inputs. Labels are never changed: the model learns
to predict the true tokens from noisy inputs. Only trained positions' neighbours are touched
as any other; control and pad tokens pass through as given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Augmenter:
    """Probabilities of masking, replacing and swapping a token with its right neighbour."""

    mask_prob: float = 0.0
    replace_prob: float = 0.0
    rotate_prob: float = 0.0
    mask_id: int = 0
    vocab_size: int = 1
    seed: int = 0

    @property
    def enabled(self) -> bool:
        """Whether any probability is above zero."""
        return self.mask_prob > 0 or self.replace_prob > 0 or self.rotate_prob > 0

    def __call__(self, ids: np.ndarray, epoch: int, index: int) -> np.ndarray:
        """A noisy copy of ``ids`` (the input ids of one sample)."""
        if not self.enabled or len(ids) == 0:
            return ids
        rng = np.random.default_rng([self.seed, epoch, index])
        out = np.array(ids, copy=True)
        if self.rotate_prob > 0 and len(out) > 1:
            for i in np.nonzero(rng.random(len(out) - 1) < self.rotate_prob)[0]:
                out[i], out[i + 1] = out[i + 1], out[i]
        if self.replace_prob > 0:
            chosen = rng.random(len(out)) < self.replace_prob
            out[chosen] = rng.integers(0, self.vocab_size, int(chosen.sum()))
        if self.mask_prob > 0:
            out[rng.random(len(out)) < self.mask_prob] = self.mask_id
        return out
