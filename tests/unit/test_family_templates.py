"""Real chat templates: rendered alike in the UI's light renderer and in transformers, the loss on the
answers and the token that ends them, records they refuse named before a run, ChatML for models with none."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from families import FAMILIES, GEMMA2, PHI3, build_family, family_tokenizer

from engine.config import Config
from engine.data.chat_template import ModelTemplate, read_model_template
from engine.data.chat_tokens import ensure_chat_template, stop_token_ids
from engine.data.pipeline import prepare
from engine.data.template import IGNORE_INDEX, render, tokenize_conversation
from engine.data.token_cache import TokenCache
from engine.data.validate import check_file, precheck
from engine.errors import DataError

SYSTEM = {"role": "system", "content": "Answer briefly."}
FIRST = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "2 + 3 = 5"}]
SECOND = [{"role": "user", "content": "What is the capital of Peru?"},
          {"role": "assistant", "content": "The capital of Peru is Lima."}]
CONVERSATIONS = [FIRST, [SYSTEM, *FIRST], [SYSTEM, *FIRST, *SECOND], [*FIRST, *SECOND]]
TEMPLATED = [name for name, family in FAMILIES.items() if family.template]


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, Any]:
    """Each family's tokenizer as a run uses it (ChatML markers added where there is no template)."""
    made = {}
    for name, family in FAMILIES.items():
        tokenizer = family_tokenizer(family)
        ensure_chat_template(tokenizer)
        made[name] = tokenizer
    return made


def runs(labels: list[int]) -> list[list[int]]:
    """Maximal runs of trained tokens."""
    found: list[list[int]] = []
    previous = IGNORE_INDEX
    for label in labels:
        if label != IGNORE_INDEX:
            if previous == IGNORE_INDEX:
                found.append([])
            found[-1].append(label)
        previous = label
    return found


@pytest.mark.parametrize("name", TEMPLATED)
@pytest.mark.parametrize("generation", [False, True])
def test_light_renderer_matches_transformers(name: str, generation: bool, tokenizers: dict) -> None:
    family = FAMILIES[name]
    template = ModelTemplate(family.template or "", "x", family.tokens)
    for messages in CONVERSATIONS:
        prompt = messages[:-1] if generation else messages
        assert template.render(prompt, generation) == render(tokenizers[name], prompt, generation)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_answer_and_the_token_ending_it_carry_the_loss(name: str, tokenizers: dict) -> None:
    tokenizer = tokenizers[name]
    stops = stop_token_ids(tokenizer)
    sample = tokenize_conversation(tokenizer, [SYSTEM, *FIRST, *SECOND], "assistant", 512)
    trained = runs(sample.labels)
    assert len(trained) == 2
    for run, answer in zip(trained, (FIRST[1]["content"], SECOND[1]["content"]), strict=True):
        text = tokenizer.decode(run, skip_special_tokens=False)
        assert text.startswith(answer), text
        end = run[len(tokenizer.encode(answer, add_special_tokens=False))]
        assert end == stops[0], (text, tokenizer.convert_ids_to_tokens(stops))
    everything = tokenizer.decode([t for run in trained for t in run], skip_special_tokens=False)
    for untrained in ("Answer briefly", "What is", "user", "<|im_start|>", "<|assistant|>", "<start_of_turn>"):
        assert untrained not in everything


def test_phi3_trains_its_turn_end_and_the_final_eos_never_the_next_turn(tokenizers: dict) -> None:
    tokenizer = tokenizers["phi3"]
    sample = tokenize_conversation(tokenizer, [*FIRST, *SECOND], "assistant", 512)
    texts = [tokenizer.decode(run, skip_special_tokens=False) for run in runs(sample.labels)]
    assert texts == ["2 + 3 = 5<|end|>", "The capital of Peru is Lima.<|end|>\n<|endoftext|>"]


def test_gemma_folds_a_system_turn_into_the_first_user_turn(tokenizers: dict) -> None:
    text = render(tokenizers["gemma2"], [SYSTEM, *FIRST])
    assert text.startswith("<bos><start_of_turn>user\nAnswer briefly.\n\nWhat is 2 + 3?<end_of_turn>\n")


def test_models_without_a_template_get_chatml_markers_as_special_tokens(tokenizers: dict) -> None:
    for name in ("mistral", "gpt2"):
        tokenizer = tokenizers[name]
        ids = tokenizer.encode("<|im_start|>user\nhi<|im_end|>", add_special_tokens=False)
        tokens = tokenizer.convert_ids_to_tokens(ids)
        assert (tokens[0], tokens[-1]) == ("<|im_start|>", "<|im_end|>")
        assert "".join(tokens[1:-1]).count("<") == 0
        assert tokenizer.eos_token == "<|im_end|>" and stop_token_ids(tokenizer) == [tokenizer.eos_token_id]


def _gemma_folder(tmp_path: Path) -> Path:
    return build_family("gemma2", tmp_path / "gemma2")


def _file(tmp_path: Path) -> Path:
    text_only = {"text": "The capital of Peru is Lima."}  # sft reads it as a lone assistant turn
    lines = [{"messages": [SYSTEM, *FIRST]}, text_only, {"messages": SECOND}]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_a_record_the_template_refuses_is_named_before_a_run(tmp_path: Path) -> None:
    folder, path = _gemma_folder(tmp_path), _file(tmp_path)
    template = read_model_template(folder)
    assert template is not None and template.origin.endswith("tokenizer_config.json")
    with pytest.raises(DataError, match=rf"^{path}:2: the chat template \(.*tokenizer_config.json\) cannot render "
                                        r"this record: Conversation roles must alternate"):
        precheck(path, template=template)
    assert precheck(path, on_invalid="skip", template=template).valid == 2
    report = check_file(path, template=template)
    assert [(issue.where, issue.code) for issue in report.issues] == [(f"{path}:2", "template")]


@pytest.mark.parametrize("on_invalid", ["fail", "skip"])
def test_the_worker_names_a_record_the_template_refuses(tmp_path: Path, on_invalid: str) -> None:
    from engine.train.model import load_tokenizer

    folder, path = _gemma_folder(tmp_path), _file(tmp_path)
    config = Config()
    config = replace(config, data=replace(config.data, on_invalid=on_invalid))
    cache = TokenCache(tmp_path / "cache")
    if on_invalid == "fail":
        with pytest.raises(DataError, match=rf"^{path}:2: the chat template cannot render this record"):
            prepare([path], load_tokenizer(folder), config, cache, workers=1)
        return
    prepared = prepare([path], load_tokenizer(folder), config, cache, workers=1)
    assert len(prepared.dataset) == 2 and [i.code for i in prepared.reports[0].issues] == ["template"]


def test_a_template_without_a_prompt_prefix_is_refused_for_that_record(tmp_path: Path) -> None:
    # the system text goes into the last user turn (as Mistral v0.3 does): earlier prompts differ from the whole
    source = ("{% for m in messages if m['role'] != 'system' %}{% if m['role'] == 'user' %}[INST] "
              "{% if loop.last or loop.revindex == 2 %}{{ messages[0]['content'] }} {% endif %}{{ m['content'] }}"
              " [/INST]{% else %}{{ m['content'] }}</s>{% endif %}{% endfor %}")
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"messages": [SYSTEM, *FIRST, *SECOND]}) + "\n" + json.dumps({"messages": FIRST}) + "\n")
    report = check_file(path, template=ModelTemplate(source, "t.jinja"))
    assert [issue.where for issue in report.issues] == [f"{path}:1"]
    assert "before assistant turn 1 differently" in report.issues[0].reason


def test_generation_blocks_give_the_assistant_mask(tokenizers: dict) -> None:
    tokenizer = family_tokenizer(FAMILIES["phi3"])
    tokenizer.chat_template = PHI3.replace("{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}",
                                           "{{'<|assistant|>\n'}}{% generation %}{{ message['content'] + '<|end|>' }}"
                                           "{% endgeneration %}{{ '\n' }}")
    sample = tokenize_conversation(tokenizer, [*FIRST, *SECOND], "assistant", 512)
    texts = [tokenizer.decode(run, skip_special_tokens=False) for run in runs(sample.labels)]
    assert texts == ["2 + 3 = 5<|end|>", "The capital of Peru is Lima.<|end|>"]
    light = ModelTemplate(tokenizer.chat_template, "x", FAMILIES["phi3"].tokens)
    assert light.render([*FIRST, *SECOND]) == render(tokenizer, [*FIRST, *SECOND])


def test_a_system_turn_with_no_user_turn_to_fold_into_keeps_the_templates_message() -> None:
    template = ModelTemplate(GEMMA2, "x", FAMILIES["gemma2"].tokens)
    with pytest.raises(Exception, match="^System role not supported$"):
        template.render([SYSTEM, FIRST[1]])
