"""Tiny random models of six families, each with a locally trained tokenizer and its family's real chat
template (or none), saved with ``save_pretrained`` as the released models ship them.

The templates are the ones the families publish in ``tokenizer_config.json`` (Qwen2-Instruct,
Phi-3-mini-instruct, Gemma-2-it, Llama-3-Instruct); Mistral's base model and GPT-2 ship none.
Llama-3's is saved as ``chat_template.jinja`` (the newer layout), the others inside
``tokenizer_config.json``. No per-family setting is needed to train any of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import corpus_lines

QWEN2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
         "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
         "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
         "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
PHI3 = ("{% for message in messages %}{% if message['role'] == 'system' %}"
        "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
        "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
        "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")
GEMMA2 = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
          "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
          "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
          "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
          "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
          "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
          "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "max_position_embeddings": 256}


@dataclass(frozen=True)
class Family:
    """How one family's released model folder looks: its classes, special tokens and template."""

    model: str
    """``transformers`` config class name (the model class is found from it)."""
    specials: tuple[str, ...]
    tokens: dict[str, str]
    template: str | None
    shape: dict[str, Any] = field(default_factory=lambda: dict(SHAPE))
    jinja_file: bool = False


FAMILIES = {
    "qwen2": Family("Qwen2Config", ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
                    {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, QWEN2,
                    {**SHAPE, "tie_word_embeddings": True}),
    "mistral": Family("MistralConfig", ("<unk>", "<s>", "</s>"),
                      {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, None,
                      {**SHAPE, "tie_word_embeddings": False}),
    "gpt2": Family("GPT2Config", ("<|endoftext|>",),
                   {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}, None,
                   {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 256}),
    "phi3": Family("Phi3Config", ("<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|end|>", "<|user|>",
                                  "<|system|>"),
                   {"bos_token": "<s>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                    "unk_token": "<unk>"}, PHI3, {**SHAPE, "tie_word_embeddings": False}),
    "gemma2": Family("Gemma2Config", ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
                     {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}, GEMMA2,
                     {**SHAPE, "head_dim": 16, "tie_word_embeddings": True}),
    "llama3": Family("LlamaConfig", ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                     "<|end_header_id|>", "<|eot_id|>"),
                     {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}, LLAMA3,
                     {**SHAPE, "tie_word_embeddings": False}, jinja_file=True),
}


def family_tokenizer(family: Family) -> Any:
    """A byte-level BPE trained on the test corpus, with the family's special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, min_frequency=1, special_tokens=list(family.specials),
                                  show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(corpus_lines(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **family.tokens)
    if family.template:
        tokenizer.chat_template = family.template
    return tokenizer


def build_family(name: str, folder: Path, seed: int = 0) -> Path:
    """Save a tiny random model of family ``name`` with its tokenizer (and template) into ``folder``."""
    import torch
    import transformers

    family = FAMILIES[name]
    tokenizer = family_tokenizer(family)
    config_class = getattr(transformers, family.model)
    ids = {key.replace("_token", "_token_id"): tokenizer.convert_tokens_to_ids(value)
           for key, value in family.tokens.items() if key in ("bos_token", "eos_token", "pad_token")}
    config = config_class(vocab_size=len(tokenizer), **family.shape, **ids)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    _place_template(folder, family)
    return folder


def _place_template(folder: Path, family: Family) -> None:
    """The template where the family ships it: ``chat_template.jinja`` or inside ``tokenizer_config.json``."""
    jinja = folder / "chat_template.jinja"
    if family.template is None or family.jinja_file:
        if family.template is None:
            jinja.unlink(missing_ok=True)
        else:
            jinja.write_text(family.template)
        return
    jinja.unlink(missing_ok=True)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = family.template
    config_path.write_text(json.dumps(config, indent=2))
