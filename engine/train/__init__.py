"""Training: models, the fine-tuning loop, checkpoints and evaluation (imports torch)."""
