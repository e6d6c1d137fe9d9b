"""LlamaHome TUI: a keyboard-driven console and a headless batch mode for fine-tuning LLMs."""

__version__ = "0.1.0"
