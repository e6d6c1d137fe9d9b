"""The data side of the engine: records from files, chat rendering with loss masks, tokenizers."""
