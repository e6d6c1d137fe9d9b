"""The layered config: defaults, layering order, error messages, parsing, round-trips, editing."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit

from engine.config import (
    CONFIG_DIR,
    DEFAULT_FILE,
    PROJECT_ROOT,
    SECTIONS,
    Config,
    TrainingConfig,
    config_from_dict,
    config_to_dict,
    list_builtin_models,
    load_config,
    load_model_shape,
    model_family,
    set_value,
)
from engine.errors import ConfigError, UserError


def _error(**kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(**{"env": {}, **kwargs})  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def _write(tmp_path: Path, text: str, name: str = "my.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults ----------------------------------------------------------------------------------

def test_defaults_equal_default_toml() -> None:
    assert load_config(env={}) == Config()


def test_default_toml_has_every_key_and_no_other() -> None:
    doc = tomlkit.parse(DEFAULT_FILE.read_text(encoding="utf-8")).unwrap()
    doc.pop("model_configs")
    expected = {name: {f.name for f in dataclasses.fields(cls)} for name, cls in SECTIONS.items()}
    assert {name: set(table) for name, table in doc.items()} == expected


def test_default_toml_comments_every_key() -> None:
    lines = DEFAULT_FILE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if line and not line.startswith(("#", "[")):
            assert lines[number - 1].startswith("#"), f"default.toml:{number + 1}: no comment above {line!r}"


def test_every_toml_file_under_config_loads() -> None:
    files = sorted(CONFIG_DIR.rglob("*.toml"))
    assert DEFAULT_FILE in files and len(files) >= 2
    for path in files:
        tomlkit.parse(path.read_text(encoding="utf-8"))
    for name in list_builtin_models():
        assert isinstance(load_model_shape(name)["family"], str)


def test_paths() -> None:
    assert (PROJECT_ROOT / "engine" / "config.py").is_file()
    assert CONFIG_DIR == PROJECT_ROOT / "config"


def test_importing_config_does_not_import_torch() -> None:
    code = "import sys, engine.config; sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT).returncode == 0


# --- layering ----------------------------------------------------------------------------------

LAYERED = """
[training]
epochs = 2
batch_size = 8
warmup_steps = 5
seed = 1

[model_configs.llama.training]
batch_size = 4
warmup_steps = 6
seed = 2
"""


def test_layering_order_file_family_env_set(tmp_path: Path) -> None:
    path = _write(tmp_path, LAYERED)
    env = {"LLAMAHOME_TRAINING__WARMUP_STEPS": "7", "LLAMAHOME_TRAINING__SEED": "3"}
    config = load_config(path, ["training.seed=4"], env, family="llama")
    training = config.training
    assert (training.epochs, training.batch_size, training.warmup_steps, training.seed) == (2, 4, 7, 4)


def test_family_overrides_only_for_that_family(tmp_path: Path) -> None:
    path = _write(tmp_path, LAYERED)
    assert load_config(path, env={}).training.batch_size == 8
    assert load_config(path, env={}, family="qwen2").training.batch_size == 8
    assert load_config(path, env={}, family="LLAMA").training.batch_size == 4


def test_later_set_flag_wins() -> None:
    config = load_config(overrides=["lora.r=4", "lora.r=2"], env={})
    assert config.lora.r == 2


# --- error messages ----------------------------------------------------------------------------

@pytest.mark.parametrize(("flag", "expected"), [
    ("training.lr=1", "--set training.lr=1: unknown key 'training.lr' (known keys in [training]: method, "),
    ("training.method=lorax",
     "training.method = 'lorax': expected one of 'lora', 'qlora', 'qat', 'full'"),
    ("training.batch_size=abc", "training.batch_size = 'abc': expected an integer"),
    ("training.batch_size=true", "training.batch_size = true: expected an integer"),
    ("training.batch_size=2.5", "training.batch_size = 2.5: expected an integer"),
    ("training.learning_rate=-1", "training.learning_rate = -1: must be > 0"),
    ("data.validation_split=0.7", "data.validation_split = 0.7: must be between 0.0 and 0.5"),
    ("data.shuffle=maybe", "data.shuffle = 'maybe': expected true or false"),
    ("lora.target_modules=[]", "lora.target_modules = []: must be 'auto' or a non-empty list of names"),
    ("trainer.epochs=1", "unknown section [trainer]"),
    ("training", "--set training: expected SECTION.KEY=VALUE"),
    ("model.builtin=huge", "model.builtin = 'huge': no such built-in model (available: tiny-llama"),
])
def test_flag_errors_name_the_key(flag: str, expected: str) -> None:
    message = _error(overrides=[flag])
    assert expected in message
    assert message.startswith(f"--set {flag}:")


def test_errors_are_user_errors() -> None:
    assert issubclass(ConfigError, UserError)


def test_file_error_is_prefixed_with_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[training]\nlr = 1\n")
    expected = f"{path}: unknown key 'training.lr' (known keys in [training]:"
    assert _error(config_file=path).startswith(expected)


def test_file_bad_value_and_bad_section(tmp_path: Path) -> None:
    path = _write(tmp_path, "[eval]\nsteps = -2\n")
    assert _error(config_file=path) == f"{path}: eval.steps = -2: must be >= 0"
    path = _write(tmp_path, "training = 3\n")
    assert _error(config_file=path).startswith(f"{path}: training = 3: expected a table")


def test_family_table_errors_name_the_full_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "[model_configs.llama.lora]\nr = 0\n")
    assert _error(config_file=path) == f"{path}: model_configs.llama.lora.r = 0: must be > 0"


def test_toml_syntax_error_has_the_line_number(tmp_path: Path) -> None:
    path = _write(tmp_path, "[training]\nepochs = 2\nbatch_size = = 3\n")
    assert _error(config_file=path).startswith(f"{path}:3: invalid TOML: ")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert _error(config_file=path) == f"{path}: no such config file"


def test_env_error_is_prefixed_with_the_variable() -> None:
    message = _error(env={"LLAMAHOME_TRAINING__LR": "1"})
    assert message.startswith("LLAMAHOME_TRAINING__LR: unknown key 'training.lr'")


def test_direct_construction_validates() -> None:
    with pytest.raises(ConfigError, match=r"^training\.epochs = 0: must be > 0$"):
        TrainingConfig(epochs=0)


# --- parsing values from text ------------------------------------------------------------------

def test_env_variables() -> None:
    env = {"LLAMAHOME_HOME": "/somewhere", "LLAMAHOME_WORKSPACE": "x", "PATH": "/bin",
           "llamahome_training__learning_rate": "1e-4", "LLAMAHOME_DATA__SHUFFLE": "false",
           "LLAMAHOME_EARLY_STOPPING__ENABLED": "true", "LLAMAHOME_MODEL__PATH": "models/my model"}
    config = load_config(env=env)
    assert config.training.learning_rate == pytest.approx(1e-4)
    assert config.data.shuffle is False
    assert config.early_stopping.enabled is True
    assert config.model.path == "models/my model"


@pytest.mark.parametrize(("text", "expected"), [
    ("q_proj,v_proj", ["q_proj", "v_proj"]),
    (" q_proj , v_proj ", ["q_proj", "v_proj"]),
    ('["q_proj", "v_proj"]', ["q_proj", "v_proj"]),
    ("q_proj", ["q_proj"]),
])
def test_list_values(text: str, expected: list[str]) -> None:
    assert load_config(overrides=[f"lora.target_modules={text}"], env={}).lora.target_modules == expected
    env = {"LLAMAHOME_LORA__TARGET_MODULES": text}
    assert load_config(env=env).lora.target_modules == expected


def test_scalar_values() -> None:
    flags = ["training.learning_rate=1", 'model.path="quoted path"', "training.precision=bf16",
             "data.shuffle=False", "model.builtin=tiny-llama"]
    config = load_config(overrides=flags, env={})
    assert config.training.learning_rate == 1.0 and isinstance(config.training.learning_rate, float)
    assert config.model.path == "quoted path"
    assert config.training.precision == "bf16"
    assert config.data.shuffle is False


def test_int_accepted_for_float_in_files(tmp_path: Path) -> None:
    path = _write(tmp_path, "[training]\nmax_grad_norm = 2\n")
    assert load_config(path, env={}).training.max_grad_norm == 2.0


# --- plain data --------------------------------------------------------------------------------

def test_round_trip_through_json() -> None:
    config = load_config(overrides=["lora.target_modules=q_proj", "training.learning_rate=3e-4"], env={})
    data = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(data) == config


def test_from_dict_validates_and_fills_defaults() -> None:
    assert config_from_dict({"training": {"epochs": 3}}).training.epochs == 3
    assert config_from_dict({}) == Config()
    with pytest.raises(ConfigError, match=r"training\.epochs = 0: must be > 0"):
        config_from_dict({"training": {"epochs": 0}})
    with pytest.raises(ConfigError, match=r"unknown key 'lora\.rank'"):
        config_from_dict({"lora": {"rank": 3}})


# --- built-in models and families --------------------------------------------------------------

def test_tiny_llama_shape() -> None:
    shape = load_model_shape("tiny-llama")
    assert shape["family"] == "llama"
    assert shape["shape"]["hidden_size"] == 256
    assert shape["tokenizer"]["vocab_size"] == 1024
    assert shape["pretrain"]["corpus"] == "data/samples/base_corpus.txt"
    assert type(shape) is dict and type(shape["shape"]) is dict
    assert "tiny-llama" in list_builtin_models()


def test_unknown_builtin_model() -> None:
    with pytest.raises(ConfigError) as info:
        load_model_shape("x")
    assert str(info.value).startswith("model.builtin = 'x': no such built-in model (available: ")


def test_model_family(tmp_path: Path) -> None:
    assert model_family(Config()) == "llama"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    assert model_family(config_from_dict({"model": {"path": str(tmp_path)}})) == "qwen2"


def test_model_family_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such folder"):
        model_family(config_from_dict({"model": {"path": str(tmp_path / "missing")}}))
    with pytest.raises(ConfigError, match="not a save_pretrained folder"):
        model_family(config_from_dict({"model": {"path": str(tmp_path)}}))


# --- editing a file ----------------------------------------------------------------------------

def test_set_value_keeps_comments(tmp_path: Path) -> None:
    path = _write(tmp_path, "# mine\n[training]\n# the rate\nlearning_rate = 1e-3  # why\nepochs = 2\n")
    set_value(path, "training.learning_rate", "2e-4")
    set_value(path, "lora.target_modules", "q_proj,v_proj")
    set_value(path, "model_configs.llama.lora.r", 8)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# mine\n[training]\n# the rate\nlearning_rate = 0.0002  # why\nepochs = 2\n")
    config = load_config(path, env={}, family="llama")
    assert config.training.learning_rate == pytest.approx(2e-4)
    assert config.lora.target_modules == ["q_proj", "v_proj"]
    assert config.lora.r == 8


def test_set_value_validates_first(tmp_path: Path) -> None:
    path = _write(tmp_path, "[training]\nepochs = 2\n")
    with pytest.raises(ConfigError, match=r"training\.epochs = -1: must be > 0"):
        set_value(path, "training.epochs", -1)
    with pytest.raises(ConfigError, match=r"unknown key 'training\.lr'"):
        set_value(path, "training.lr", 1)
    assert path.read_text(encoding="utf-8") == "[training]\nepochs = 2\n"


def test_set_value_creates_a_file(tmp_path: Path) -> None:
    path = tmp_path / "new.toml"
    set_value(path, "model.trust_remote_code", True)
    assert load_config(path, env={}).model.trust_remote_code is True


# --- [[data.sources]] ------------------------------------------------------------------------------

def test_data_sources_tables_are_read_named_and_written_back(tmp_path: Path) -> None:
    from engine.config import DataSource, set_value

    path = _write(tmp_path, '[[data.sources]]\npath = "chat/train.jsonl"\nweight = 3\n\n'
                            '[[data.sources]]\npath = "more.csv"\nformat = "csv"\nname = "extra"\n')
    sources = load_config(path, env={}).data.sources
    assert sources == [DataSource("chat/train.jsonl", 3.0, "", "train"), DataSource("more.csv", 1.0, "csv", "extra")]
    assert load_config(env={}).data.sources == []
    out = tmp_path / "out.toml"
    set_value(out, "data.sources", '[{path = "a.jsonl", weight = 2}]')
    assert load_config(out, env={}).data.sources == [DataSource("a.jsonl", 2.0, "", "a")]


@pytest.mark.parametrize(("text", "message"), [
    ('[{path = "a.jsonl", weight = 0}]', "data.sources[1].weight = 0: must be a number > 0"),
    ('[{path = "a.jsonl"}, {weight = 1}]', "data.sources[2].path = None: expected the path of a data file"),
    ('[{path = "a.jsonl", wieght = 1}]', "unknown key 'data.sources[1].wieght' (known keys: path, weight, format, "
                                         "name)"),
    ('[{path = "x/a.jsonl"}, {path = "y/a.jsonl"}]', "data.sources[2].name = 'a': another source has this name"),
    ('[{path = "a.jsonl"}, 3]', "data.sources[2] = 3: expected a table with path, weight and format"),
])
def test_a_bad_source_is_one_line_naming_its_key_path(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[f"data.sources={text}"], env={})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_sources_given_as_paths_on_the_command_line_weigh_the_same(tmp_path: Path) -> None:
    sources = load_config(overrides=["data.sources=a.jsonl, b.jsonl"], env={}).data.sources
    assert [(s.path, s.weight, s.name) for s in sources] == [("a.jsonl", 1.0, "a"), ("b.jsonl", 1.0, "b")]
    with pytest.raises(ConfigError, match=r"data.sources = 3: expected \[\[data.sources\]\] tables"):
        load_config(_write(tmp_path, "[data]\nsources = 3\n"), env={})
