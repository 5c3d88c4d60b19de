"""The training configuration: defaults, type checks, overrides, files and the reference."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field

import pytest

from seele_agents.config import (
    REQUIRED,
    AlgoConfig,
    ConfigError,
    Options,
    Section,
    TrainConfig,
    add_options,
    config_from_dict,
    config_reference,
    config_to_dict,
    load_config,
    option,
    options_from_args,
    options_reference,
    parse_override,
    save_config,
)
from seele_env.curricula import CURRICULA

# The sections as TrainConfig declares them: name -> dataclass.
SECTIONS = {
    f.name: f.default_factory
    for f in dataclasses.fields(TrainConfig)
    if isinstance(f.default_factory, type)
}


def _get(cfg: TrainConfig, dotted: str):
    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


# --- defaults and field metadata -------------------------------------------------------------


def test_defaults_are_the_cpu_demo() -> None:
    cfg = load_config()
    assert cfg == TrainConfig()
    assert (cfg.model.name, cfg.env.dataset, cfg.generation.backend) == (
        "tiny",
        "procedural",
        "transformers",
    )
    assert list(SECTIONS) == [
        "model",
        "env",
        "eval",
        "curriculum",
        "generation",
        "algo",
        "optim",
        "sft",
        "log",
        "distributed",
    ]


@pytest.mark.parametrize("cls", [TrainConfig, *SECTIONS.values()], ids=lambda c: c.__name__)
def test_every_field_has_one_sentence_of_help_and_valid_choices(cls: type) -> None:
    for f in dataclasses.fields(cls):
        if f.name in SECTIONS and cls is TrainConfig:
            continue
        help = f.metadata.get("help", "")
        assert help.endswith(".") and (help[0].isupper() or help[0] == '"'), (cls, f.name, help)
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        if "choices" in f.metadata:
            assert default in f.metadata["choices"], (cls, f.name)


def test_curriculum_choices_are_the_registered_curricula() -> None:
    choices = next(f for f in dataclasses.fields(TrainConfig().curriculum) if f.name == "name")
    assert tuple(choices.metadata["choices"]) == tuple(CURRICULA)


def test_mutable_defaults_are_not_shared() -> None:
    a, b = TrainConfig(), TrainConfig()
    a.model.lora_target_modules.append("gate_proj")
    a.curriculum.options["horizon"] = 3
    assert b.model.lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert b.curriculum.options == {}


def test_direct_construction_is_checked_and_normalised() -> None:
    assert AlgoConfig(beta=1).beta == 1.0 and isinstance(AlgoConfig(beta=1).beta, float)
    with pytest.raises(ConfigError, match=r"^beta: got -1\.0; must be >= 0"):
        AlgoConfig(beta=-1)
    assert TrainConfig(algo={"beta": 0.5}).algo == AlgoConfig(beta=0.5)  # type: ignore[arg-type]


def test_validate_catches_fields_changed_by_hand() -> None:
    cfg = TrainConfig()
    cfg.algo.micro_batch_size = 0
    with pytest.raises(ConfigError, match=r"^algo\.micro_batch_size: got 0; must be >= 1"):
        cfg.validate()


@pytest.mark.parametrize(
    ("loss", "epsilon_high", "expected"),
    [("dapo", None, 0.28), ("grpo", None, 0.2), ("dr_grpo", None, 0.2), ("grpo", 0.3, 0.3)],
)
def test_epsilon_high_defaults_per_loss_type(loss: str, epsilon_high, expected: float) -> None:
    assert AlgoConfig(loss=loss, epsilon_high=epsilon_high).resolved_epsilon_high == expected


# --- conversion: what is accepted --------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("algo.beta=0.01", "algo.beta", 0.01),
        ("optim.lr=1e-5", "optim.lr", 1e-5),  # YAML 1.1 would read 1e-5 as a string
        ("optim.lr=3E-4", "optim.lr", 3e-4),
        ("algo.beta=0", "algo.beta", 0.0),
        ("steps=2.0", "steps", 2),
        ("env.difficulty=2", "env.difficulty", 2),
        ("env.difficulty=[1, 3]", "env.difficulty", [1, 3]),
        ("env.families=[linear, word]", "env.families", ["linear", "word"]),
        ("env.limit=null", "env.limit", None),
        ("eval.dataset=math500", "eval.dataset", "math500"),
        ("eval.split=null", "eval.split", None),
        ("model.revision=main", "model.revision", "main"),
        ("model.device=cuda:1", "model.device", "cuda:1"),
        ("log.wandb=true", "log.wandb", True),
        ("log.progress=False", "log.progress", False),
        ("curriculum.name=uft", "curriculum.name", "uft"),
        ("curriculum.options.target_accuracy=0.6", "curriculum.options", {"target_accuracy": 0.6}),
        (
            "curriculum.options={target_accuracy: 0.7}",
            "curriculum.options",
            {"target_accuracy": 0.7},
        ),
        ("algo.epsilon_high=0.28", "algo.epsilon_high", 0.28),
        ("env.system_prompt='Answer: briefly.'", "env.system_prompt", "Answer: briefly."),
        ("env.template='Q: {question} A:'", "env.template", "Q: {question} A:"),
        ("optim.betas=[0.9, 0.95]", "optim.betas", [0.9, 0.95]),
    ],
)
def test_accepted_overrides(override: str, key: str, expected) -> None:
    value = _get(load_config(overrides=[override]), key)
    assert value == expected
    assert type(value) is type(expected)


def test_overrides_apply_in_order_and_win_over_the_file(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("algo:\n  beta: 0.5\n  gamma: 0.25\nsteps: 7\n", encoding="utf-8")
    cfg = load_config(path, ["algo.beta=0.1", "algo.beta=0.2"])
    assert (cfg.algo.beta, cfg.algo.gamma, cfg.steps) == (0.2, 0.25, 7)
    assert cfg.algo.loss == AlgoConfig().loss  # untouched keys keep their defaults


def test_an_empty_file_gives_the_defaults(tmp_path) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing yet\n", encoding="utf-8")
    assert load_config(tmp_path / "empty.yaml") == TrainConfig()


# --- conversion: what is refused, and how the error reads --------------------------------------

ERRORS = [
    ("algo.epsilon_low=abc", "algo.epsilon_low: expected a float, got 'abc' (str)"),
    ("log.wandb=1", "log.wandb: expected true or false, got 1 (int)"),
    ("log.wandb=yes", "log.wandb: expected true or false, got 'yes' (str)"),
    ("log.wandb=on", "log.wandb: expected true or false, got 'on' (str)"),
    ("steps=2.5", "steps: expected an integer, got 2.5 (float)"),
    ("steps=true", "steps: expected an integer, got True (bool)"),
    ("algo.beta=.nan", "algo.beta: expected a finite float, got nan"),
    ("model.revision=[a]", "model.revision: expected a string or null, got ['a'] (list)"),
    ("env.difficulty=true", "env.difficulty: expected an integer or a list of integers, got True"),
    ("env.difficulty=[1, x]", "env.difficulty[1]: expected an integer, got 'x' (str)"),
    ("env.difficulty=[3, 1]", "env.difficulty: got [3, 1]; a range [lo, hi] needs lo <= hi."),
    ("env.difficulty=[1, 2, 3]", "env.difficulty: got [1, 2, 3]; give an int in [1, 10]"),
    ("env.difficulty=0", "env.difficulty: got 0; give an int in [1, 10]"),
    ("sft.difficulty=[0, 2]", "sft.difficulty: got [0, 2]; give an int in [1, 10]"),
    ("algo.beta=-0.1", "algo.beta: got -0.1; must be >= 0 (Weight of the KL penalty"),
    ("algo.epsilon_low=0", "algo.epsilon_low: got 0.0; must be > 0"),
    ("algo.epsilon_low=1", "algo.epsilon_low: got 1.0; must be < 1"),
    ("algo.micro_batch_size=0", "algo.micro_batch_size: got 0; must be >= 1"),
    ("algo.minibatch_size=-1", "algo.minibatch_size: got -1; must be >= 0"),
    ("generation.top_p=0", "generation.top_p: got 0.0; must be > 0"),
    ("generation.top_p=1.5", "generation.top_p: got 1.5; must be <= 1"),
    ("generation.temperature=-1", "generation.temperature: got -1.0; must be >= 0"),
    ("curriculum.group_size=0", "curriculum.group_size: got 0; must be >= 1"),
    ("curriculum.num_rounds=0", "curriculum.num_rounds: got 0; must be >= 1"),
    ("problems_per_step=0", "problems_per_step: got 0; must be >= 1"),
    ("steps=-1", "steps: got -1; must be >= 0"),
    ("keep_checkpoints=0", "keep_checkpoints: got 0; must be >= 1"),
    ("optim.lr=0", "optim.lr: got 0.0; must be > 0"),
    ("eval.max_new_tokens=0", "eval.max_new_tokens: got 0; must be >= 1"),
    ("optim.betas=[0.9]", "optim.betas: got [0.9]; give two numbers in [0, 1)"),
    ("model.device=gpu", "model.device: got 'gpu'; use auto, cpu, cuda or cuda:N"),
    ("model.device=cuda:x", "model.device: got 'cuda:x'; use auto, cpu, cuda or cuda:N"),
    ("model.dtype=float", "model.dtype: 'float' is not one of ['auto', 'float32', 'bfloat16', "),
    ("curriculum.name=seel", "curriculum.name: 'seel' is not one of"),
    ("env.families=[wrod]", "env.families[0]: got 'wrod'; did you mean 'word'?"),
    ("env.template=nope", "env.template: got 'nope'; use one of ['r1', 'plain', 'chat']"),
    ("model=tiny", "model: expected a mapping, got 'tiny' (str)"),
    ("algo.betta=0.1", "algo.betta: unknown key. Did you mean 'algo.beta'?"),
    ("algoo.beta=0.1", "algoo: unknown key. Did you mean 'algo'?"),
    ("algo.beta.x=1", "algo.beta: is a float, which has no key 'x'."),
    (
        "curriculum.options.target_acuracy=0.6",
        "curriculum.options.target_acuracy: curriculum 'seele' takes no option 'target_acuracy'. "
        "Did you mean 'target_accuracy'?",
    ),
    (
        "curriculum.options.group_size=2",
        "curriculum.options.group_size: not an option: set curriculum.group_size instead.",
    ),
]


@pytest.mark.parametrize(("override", "message"), ERRORS, ids=[o for o, _ in ERRORS])
def test_bad_values_name_the_key_the_value_and_the_override(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(overrides=[override])
    assert str(caught.value).startswith(f"override {override!r}: {message}")


def test_a_file_error_names_the_file_and_the_key(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("algo:\n  epsilon_low: abc\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, ["algo.beta=0.1"])
    assert str(caught.value) == f"{path}: algo.epsilon_low: expected a float, got 'abc' (str)"
    assert (caught.value.key, caught.value.source) == ("algo.epsilon_low", str(path))


def test_a_misspelt_key_in_a_file_gets_a_suggestion(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("generation:\n  max_new_token: 64\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"generation\.max_new_token: unknown key\. Did you mean "
    ):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "the config file does not exist; check the path."),
        ("algo: [1, 2", "not valid YAML"),
        ("- 1\n- 2\n", "expected a mapping such as 'algo: {beta: 0.01}', got list."),
    ],
)
def test_bad_files_are_named(tmp_path, text: str | None, message: str) -> None:
    path = tmp_path / "run.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_a_folder_is_not_a_config_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        load_config(tmp_path)


# --- parse_override ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "keys", "value"),
    [
        ("algo.beta=0.01", ["algo", "beta"], 0.01),
        ("env.difficulty=[1,3]", ["env", "difficulty"], [1, 3]),
        ("model.revision=null", ["model", "revision"], None),
        ("log.wandb=true", ["log", "wandb"], True),
        ("log.wandb=yes", ["log", "wandb"], "yes"),  # only true/false are bools
        ("optim.lr=1e-4", ["optim", "lr"], 1e-4),
        (" algo.beta = 0.5", ["algo", "beta"], 0.5),
        ("env.system_prompt=a=b", ["env", "system_prompt"], "a=b"),
        ("env.system_prompt='x: y'", ["env", "system_prompt"], "x: y"),
        ("steps=3", ["steps"], 3),
    ],
)
def test_parse_override(text: str, keys: list[str], value) -> None:
    assert parse_override(text) == (keys, value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("algo.beta", "write KEY=VALUE with a dotted key, e.g. algo.beta=0.01."),
        ("=1", "write KEY=VALUE"),
        ("algo..beta=1", "write KEY=VALUE"),
        ("algo.beta=", "no value after '='; write KEY=null for none."),
        ("env.families=[a,", "the value '[a,' is not valid YAML"),
    ],
)
def test_parse_override_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_override(text)
    assert str(caught.value).startswith(f"override {text!r}: {message}")


# --- the generic machinery on another dataclass tree -------------------------------------------


@dataclass
class _Inner:
    size: int = 1
    scale: float = 1.0


@dataclass
class _Outer:
    inner: _Inner = field(default_factory=_Inner)
    names: list[str] = field(default_factory=list)
    limit: int | None = None
    extras: dict[str, object] = field(default_factory=dict)


def test_config_from_dict_works_for_any_dataclass_tree() -> None:
    built = config_from_dict(_Outer, {"inner": {"scale": 2}, "names": ["a"], "limit": None})
    assert built == _Outer(_Inner(1, 2.0), ["a"], None)
    assert isinstance(built.inner.scale, float)
    with pytest.raises(ConfigError, match=r"^cfg\.yaml: inner\.size: expected an integer"):
        config_from_dict(_Outer, {"inner": {"size": "big"}}, source="cfg.yaml")
    with pytest.raises(
        ConfigError, match=r"^inner\.sise: unknown key\. Did you mean 'inner\.size'"
    ):
        config_from_dict(_Outer, {"inner": {"sise": 2}})
    with pytest.raises(ConfigError, match=r"^expected a mapping of settings, got 3 \(int\)"):
        config_from_dict(_Outer, 3)  # type: ignore[arg-type]


def test_sections_share_the_checks() -> None:
    assert all(issubclass(cls, Section) for cls in [TrainConfig, *SECTIONS.values()])


# --- saving and the reference -----------------------------------------------------------------


def test_save_then_load_round_trips(tmp_path) -> None:
    cfg = load_config(
        overrides=[
            "optim.lr=3e-6",
            "env.difficulty=[2, 4]",
            "env.families=[linear]",
            "env.system_prompt='true'",  # text that YAML would otherwise read as a bool
            "model.revision='123'",
            "eval.split='1e5'",  # text that this loader would otherwise read as a float
            "eval.dataset='yes'",
            "curriculum.name=uft",
            "curriculum.options={horizon: 200, start_rate: 0.75}",
            "algo.epsilon_high=0.28",
            "log.wandb=true",
        ]
    )
    path = save_config(cfg, tmp_path / "sub" / "config.yaml")
    assert load_config(path) == cfg
    assert json.loads(json.dumps(config_to_dict(cfg))) == config_to_dict(cfg)
    assert load_config(save_config(TrainConfig(), tmp_path / "d.yaml")) == TrainConfig()


def test_config_to_dict_is_plain_nested_data() -> None:
    data = config_to_dict(TrainConfig())
    assert data["algo"]["beta"] == 0.001 and data["model"]["lora_target_modules"][0] == "q_proj"
    assert config_from_dict(TrainConfig, data) == TrainConfig()


def test_reference_documents_every_key_once() -> None:
    reference = config_reference()
    assert reference == config_reference()  # deterministic, for docs/training.md
    keys = re.findall(r"^\| `([\w.]+)` \|", reference, flags=re.M)
    expected = [
        f"{name}.{f.name}" for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)
    ] + [f.name for f in dataclasses.fields(TrainConfig) if f.name not in SECTIONS]
    assert sorted(keys) == sorted(expected)
    for title in ["### Top level", *(f"### `{name}`" for name in SECTIONS)]:
        assert title in reference
    for line in reference.splitlines():
        if line.startswith("| `"):
            assert len(re.split(r"(?<!\\)\|", line)) == 6, line  # 4 cells; `|` in types escaped
    assert "| `env.difficulty` | `int \\| list[int]` | `4` |" in reference
    assert "Choices: `grpo`, `dr_grpo`, `dapo`." in reference
    assert "| `algo.beta` | `float` | `0.001` | Weight of the KL penalty" in reference


def test_docs_training_md_carries_the_current_config_reference():
    """docs/training.md documents every field once: its reference section is generated by
    config_reference(); regenerate it when a field changes."""
    from pathlib import Path

    docs = (Path(__file__).parent.parent / "docs" / "training.md").read_text(encoding="utf-8")
    assert config_reference() in docs


def test_curriculum_options_are_typed_by_the_curriculum_arguments(tmp_path) -> None:
    """Each option is converted to the type of the curriculum's ``__init__`` argument at load."""
    path = tmp_path / "run.yaml"
    path.write_text("curriculum:\n  options:\n    target_accuracy: abc\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "curriculum.options.target_accuracy"
    assert str(caught.value) == (
        f"{path}: curriculum.options.target_accuracy: expected a float, got 'abc' (str)"
    )
    with pytest.raises(ConfigError, match=r"options\.horizon: expected an integer, got 2\.5"):
        load_config(overrides=["curriculum.name=uft", "curriculum.options.horizon=2.5"])
    with pytest.raises(ConfigError, match=r"options\.boundaries\[0\]: expected an integer"):
        load_config(overrides=["curriculum.name=questa", "curriculum.options.boundaries=[x]"])
    # Good values come out as the argument's type: an int for a float, a list for a Sequence.
    cfg = load_config(overrides=["curriculum.options={target_accuracy: 0.75, anchors: false}"])
    assert cfg.curriculum.options == {"target_accuracy": 0.75, "anchors": False}
    cfg = config_from_dict(
        TrainConfig,
        {"curriculum": {"name": "questa", "options": {"rates": (1, 0.5), "boundaries": [2]}}},
    )
    assert cfg.curriculum.options == {"rates": [1.0, 0.5], "boundaries": [2]}
    assert isinstance(cfg.curriculum.options["rates"][0], float)
    cfg = load_config(overrides=["curriculum.options.first_visit_rate=0.25"])  # str | float
    assert cfg.curriculum.options == {"first_visit_rate": 0.25}


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",")]


@dataclass(frozen=True)
class _Command(Options):
    """A command's options, for the tests below."""

    name: str = option(REQUIRED, "A name.")
    count: int = option(2, "How many.", ge=1)
    rates: list[float] = option([0.0], "Rates, comma-separated.", parse=_floats)
    mode: str = option("a", "The mode.", choices=("a", "b"))
    files: list[str] | None = option(None, "Files; null = none.")
    quiet: bool = option(False, "Say less.")
    fixed: bool = option(True, "Fixed length.", cli={"flags": ("--eos",)})


def _command_args(*argv: str):
    import argparse

    parser = argparse.ArgumentParser()
    add_options(parser, _Command)
    return parser, parser.parse_args(argv)


def test_options_become_flags_with_the_fields_conversion_and_checks() -> None:
    _, args = _command_args("--name", "x")
    assert options_from_args(_Command, args) == _Command(name="x")
    _, args = _command_args(
        "--name", "x", "--count", "3", "--rates", "0.5,1", "--files", "a", "b", "--quiet", "--eos"
    )
    assert options_from_args(_Command, args) == _Command(
        name="x", count=3, rates=[0.5, 1.0], files=["a", "b"], quiet=True, fixed=False
    )
    _, args = _command_args("--name", "x", "--count", "0")
    with pytest.raises(ConfigError, match=r"^count=0 must be >= 1 \(How many\)\.$"):
        options_from_args(_Command, args)
    with pytest.raises(ConfigError, match=r"^count='3' is not an integer$"):
        _Command(name="x", count="3")  # no coercion: as strict as a config file
    with pytest.raises(SystemExit):  # argparse itself: a choice, an int, a required flag
        _command_args("--name", "x", "--mode", "c")


def test_options_help_shows_each_default_once_and_the_reference_lists_flags() -> None:
    parser, _ = _command_args("--name", "x")
    text = " ".join(parser.format_help().split())
    assert "How many. Default: 2." in text and text.count("Default: 2.") == 1
    assert "Files; null = none. --quiet" in text  # no default shown for null or a switch
    reference = options_reference(_Command, "demo")
    assert reference.startswith("### `demo` options\n\nA command's options, for the tests")
    assert "| `--name` | `str` | required | A name. |" in reference
    assert "| `--count` | `int` | `2` | How many. Range: >= 1. |" in reference
    assert "| `--eos` | `bool` | `true` | Fixed length. |" in reference


# (document, module, options class, command): each command's options table, generated.
COMMAND_DOCS = [
    ("evaluation.md", "seele_agents.evaluation.command", "EvalCommandConfig", "seele eval"),
    ("performance.md", "seele_agents.bench.speed", "SpeedConfig", "seele bench speed"),
    ("performance.md", "seele_agents.bench.scaling", "ScalingConfig", "seele bench scaling"),
    ("benchmarks.md", "seele_agents.bench.curricula", "BenchOptions", "seele bench curricula"),
]


@pytest.mark.parametrize(("doc", "module", "name", "command"), COMMAND_DOCS)
def test_docs_carry_each_commands_options_reference(doc, module, name, command):
    """Each command's options are documented once: the table is options_reference()'s; rerun it
    and paste the table when an option changes."""
    import importlib
    from pathlib import Path

    cls = getattr(importlib.import_module(module), name)
    text = (Path(__file__).parent.parent / "docs" / doc).read_text(encoding="utf-8")
    assert options_reference(cls, command) in text
