"""Train a byte-level BPE tokenizer with chat special tokens, ready for ``save_pretrained``.

Digits are split one per token so arithmetic is learnable by a tiny model. The same code serves
the built-in base model and the ``tokenizer train`` command.

Character coverage: the alphabet is the 256 byte values, so every character of any text is
covered (rare ones as several byte tokens); there is no ``character_coverage`` knob to set as in
SentencePiece. User-defined symbols (``user_symbols``) are added tokens: never split, not special.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from engine.data.template import CHATML_TEMPLATE

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>")


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2,
                        extra_special_tokens: Sequence[str] = (), user_symbols: Sequence[str] = ()) -> Any:
    """Train a byte-level BPE on ``texts`` and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIAL_TOKENS) + [t for t in extra_special_tokens if t not in SPECIAL_TOKENS]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>",
                                      pad_token="<|pad|>", unk_token=None, bos_token=None)
    wrapped.chat_template = CHATML_TEMPLATE
    if user_symbols:
        wrapped.add_tokens([s for s in user_symbols if s not in wrapped.get_vocab()])
    return wrapped
