"""The optimizer a fine-tuning run steps: AdamW, weight decay on matrices only, fused where torch has it."""

from __future__ import annotations

from typing import Any

import torch

from engine.config import Config

FUSED_DEVICES = ("cpu", "cuda")
"""Devices with torch's fused AdamW kernel (one kernel per step, not a loop over parameters)."""


def adamw(model: Any, config: Config) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (not on norms and biases); fused where torch has it.

    The fused kernel is what HF Trainer uses by default (``adamw_torch_fused``); it needs every
    trained parameter on one device type it supports.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.training.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    devices = {p.device.type for p in params}  # (only floating-point tensors can require grad)
    fused = len(devices) == 1 and devices <= set(FUSED_DEVICES)
    return torch.optim.AdamW(groups, lr=config.training.learning_rate, fused=fused or None)
