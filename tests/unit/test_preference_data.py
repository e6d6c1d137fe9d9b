"""Preference and unpaired records in the shapes users bring, rendered and cached as one sample each."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.encode import encode_texts
from engine.data.examples import Judged, Pair, detect_shape, to_example
from engine.data.render import SECOND, TRAINED, UNDESIRABLE, render_examples
from engine.data.validate import check_file
from engine.errors import DataError
from engine.objectives.preference import collate_pairs, split_pair

PROMPT = [{"role": "user", "content": "What is 2 + 2?"}]
RIGHT, WRONG = "2 + 2 = 4", "The capital of Peru is Lima."

SHAPES = {
    "TRL conversational preference": {"prompt": PROMPT, "chosen": [{"role": "assistant", "content": RIGHT}],
                                      "rejected": [{"role": "assistant", "content": WRONG}]},
    "TRL preference (plain strings)": {"prompt": "What is 2 + 2?", "chosen": RIGHT, "rejected": WRONG},
    "TRL preference with implicit prompt (chosen/rejected conversations)": {
        "chosen": PROMPT + [{"role": "assistant", "content": RIGHT}],
        "rejected": PROMPT + [{"role": "assistant", "content": WRONG}]},
    "sharegpt preference (conversations + chosen/rejected)": {
        "conversations": [{"from": "human", "value": "What is 2 + 2?"}],
        "chosen": {"from": "gpt", "value": RIGHT}, "rejected": {"from": "gpt", "value": WRONG}},
    "OpenAI messages + chosen/rejected": {"messages": PROMPT, "chosen": {"role": "assistant", "content": RIGHT},
                                          "rejected": {"role": "assistant", "content": WRONG}},
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_preference_shape_reads_as_the_same_pair(shape: str) -> None:
    record = SHAPES[shape]
    assert detect_shape(record) == ("pair", shape)
    assert to_example(record, "f:1", "dpo") == Pair(PROMPT, [{"role": "assistant", "content": RIGHT}],
                                                     [{"role": "assistant", "content": WRONG}])


def test_kto_records_keep_their_label() -> None:
    good = to_example({"prompt": "What is 2 + 2?", "completion": RIGHT, "label": True}, "f:1", "kto")
    bad = to_example({"prompt": PROMPT, "completion": WRONG, "label": False}, "f:2", "kto")
    assert isinstance(good, Judged) and good.desirable and not bad.desirable
    with pytest.raises(DataError, match=r"f:3: label: expected true or false"):
        to_example({"prompt": "q", "completion": "a", "label": "yes"}, "f:3", "kto")


def test_the_wrong_kind_names_the_objective_and_the_shape() -> None:
    record = SHAPES["sharegpt preference (conversations + chosen/rejected)"]
    with pytest.raises(DataError) as sft:
        to_example(record, "demo.json: record 1", "sft")
    assert str(sft.value) == ("demo.json: record 1: training.objective = 'sft' trains on chat conversations, "
                              "found sharegpt preference (conversations + chosen/rejected) (preference pairs "
                              "(chosen/rejected)); use training.objective = 'dpo' or 'orpo' or 'simpo'")
    with pytest.raises(DataError, match=r"training.objective = 'dpo' trains on preference pairs.*found OpenAI "
                                        r"messages.*use training.objective = 'sft'"):
        to_example({"messages": PROMPT + [{"role": "assistant", "content": RIGHT}]}, "f:1", "dpo")
    with pytest.raises(DataError, match=r"'sft' trains on chat.*found KTO.*use training.objective = 'kto'"):
        to_example({"prompt": "q", "completion": "a", "label": True}, "f:1", "sft")


def test_validate_counts_pairs_and_reports_other_kinds(tmp_path) -> None:
    import json

    path = tmp_path / "pairs.jsonl"
    rows = [SHAPES["TRL conversational preference"]] * 2 + [{"messages": PROMPT}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = check_file(path, objective="dpo")
    assert (report.valid, report.invalid) == (1, 2)
    assert report.counts() == {"duplicate": 1, "wrong_objective": 1}
    assert report.to_dict()["objective"] == "dpo"


def test_a_pair_is_one_sample_whose_second_side_is_flagged(tiny_model_dir) -> None:
    from engine.train.model import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    pair = to_example(SHAPES["TRL conversational preference"], "f:1", "dpo")
    rendered = render_examples(tokenizer, [pair, pair], "pair", "assistant")
    assert rendered[2] == [0, SECOND, 0, SECOND]
    ids, flags, lengths = encode_texts(tokenizer, rendered, 128, [])
    assert len(lengths) == 2
    first_ids, first_flags = ids[: lengths[0]], flags[: lengths[0]]
    (chosen, chosen_trained), (rejected, rejected_trained) = split_pair(first_ids, first_flags)
    assert tokenizer.decode(chosen[chosen_trained]).startswith(RIGHT)
    assert tokenizer.decode(rejected[rejected_trained]).startswith(WRONG)
    assert tokenizer.decode(rejected[~rejected_trained]) == tokenizer.decode(chosen[~chosen_trained])
    batch = collate_pairs([(first_ids, first_flags)] * 3, tokenizer.pad_token_id)
    assert batch["input_ids"].shape[0] == 6
    assert int((batch["labels"][0] != -100).sum()) == int(chosen_trained.sum())
    assert int((batch["labels"][3] != -100).sum()) == int(rejected_trained.sum())


def test_unpaired_answers_are_flagged_when_undesirable(tiny_model_dir) -> None:
    from engine.train.model import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    examples = [Judged(PROMPT, [{"role": "assistant", "content": RIGHT}], True),
                Judged(PROMPT, [{"role": "assistant", "content": WRONG}], False)]
    ids, flags, lengths = encode_texts(tokenizer, render_examples(tokenizer, examples, "unpaired", "assistant"),
                                       128, [])
    first, second = flags[: lengths[0]], flags[lengths[0]:]
    assert not (first & UNDESIRABLE).any() and (second & UNDESIRABLE).all()
    assert (first & TRAINED).any() and (second & TRAINED).any()


def test_pretrain_text_has_no_template_trains_every_token_and_is_windowed(tiny_model_dir) -> None:
    from engine.train.model import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    text = " ".join(f"{a} + {a} = {2 * a}." for a in range(30))
    ids, flags, lengths = encode_texts(tokenizer, render_examples(tokenizer, [text], "text", "assistant"), 16, [])
    assert len(lengths) > 2 and lengths.max() <= 16
    assert (flags == TRAINED).all()
    assert tokenizer.decode(ids) == text + tokenizer.eos_token
    assert "<|im_start|>" not in tokenizer.decode(ids)
    assert np.int64(lengths.sum()) == len(ids)


def test_stats_count_pairs_with_both_sides_lengths_and_the_objective_is_found_from_the_file(tmp_path) -> None:
    import json

    from engine.data.examples import file_objective
    from engine.data.stats import compute_stats

    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([SHAPES["sharegpt preference (conversations + chosen/rejected)"],
                                SHAPES["TRL preference (plain strings)"] | {"prompt": "What is 3 + 3?"}]))
    assert file_objective(path) == "dpo"
    stats = compute_stats(path, objective="dpo")
    assert stats.samples == 2 and set(stats.sides) == {"chosen", "rejected"}
    assert stats.sides["rejected"]["max"] > stats.sides["chosen"]["max"]  # the wrong answer is longer
    assert stats.tokens == sum(stats.sides[side]["mean"] * 2 for side in stats.sides)
    assert stats.role_counts == {"user": 4, "assistant": 4}


def test_stats_of_kto_records_count_desirable_and_undesirable_answers_with_their_lengths(tmp_path) -> None:
    from support import kto_records, write_jsonl

    from engine.data.stats import compute_stats

    path = write_jsonl(tmp_path / "kto.jsonl", kto_records(6, seed=1)[:5])  # 3 desirable, 2 undesirable
    stats = compute_stats(path, objective="kto")
    assert stats.samples == 5 and set(stats.sides) == {"desirable", "undesirable"}
    assert (stats.sides["desirable"]["count"], stats.sides["undesirable"]["count"]) == (3, 2)
    assert stats.tokens == pytest.approx(sum(side["mean"] * side["count"] for side in stats.sides.values()), abs=0.5)
