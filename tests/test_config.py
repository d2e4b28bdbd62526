import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from asdlib.config import ConfigError, load_yaml, parse, to_dict


@dataclass(frozen=True)
class Inner:
    rate: float = 1e-3
    kind: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    n: int = 3
    name: str = "x"
    flag: bool = False
    path: Path = Path("data")
    items: list[str] = field(default_factory=lambda: ["p", "q"])
    maybe: Optional[int] = 1
    pair: tuple[int, ...] = (0, 0)
    inner: Inner = Inner()

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")


def test_defaults_and_values():
    cfg = parse(Outer, {"n": 5, "inner": {"rate": 1, "kind": "b"}, "items": ["z"], "maybe": 4,
                        "path": "x/y", "pair": [2, 3]})
    assert cfg.n == 5 and cfg.inner.rate == 1.0 and isinstance(cfg.inner.rate, float)
    assert cfg.inner.kind == "b" and cfg.items == ["z"] and cfg.maybe == 4
    assert cfg.path == Path("x/y") and cfg.pair == (2, 3)
    assert parse(Outer, {"maybe": None}).maybe is None
    assert parse(Outer, None) == Outer()
    assert to_dict(cfg)["inner"] == {"rate": 1.0, "kind": "b"}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"nn": 1}, "params.yaml: s.nn: unknown key"),
        ({"n": "3"}, "params.yaml: s.n: expected an integer"),
        ({"n": True}, "params.yaml: s.n: expected an integer"),
        ({"flag": 1}, "params.yaml: s.flag: expected true or false"),
        ({"inner": {"kind": "c"}}, "params.yaml: s.inner.kind: expected one of"),
        ({"inner": {"speed": 1}}, "params.yaml: s.inner.speed: unknown key"),
        ({"items": "p"}, "params.yaml: s.items: expected a list"),
        ({"items": ["p", 3]}, "params.yaml: s.items[1]: expected a string"),
        ({"n": -1}, "n must be >= 0"),
        ({"inner": {"rate": float("nan")}}, "params.yaml: s.inner.rate: expected a finite number"),
        ({"inner": {"rate": float("inf")}}, "params.yaml: s.inner.rate: expected a finite number"),
    ],
)
def test_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(Outer, data, "params.yaml: s")


def test_load_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_yaml(bad)
    twice = tmp_path / "twice.yaml"
    twice.write_text("a: 1\na: 2\n")
    with pytest.raises(ConfigError, match=r"(?s)twice.yaml: not valid YAML.*duplicate key \"a\"(?!.*suppress)"):
        load_yaml(twice)


@pytest.mark.parametrize("text, message", [
    ("1: a\nfoo: b\n", "1: keys must be strings, got int 1"),
    ("mix:\n  foo: b\n  1: a\n", "mix.1: keys must be strings, got int 1"),
    ("mix:\n  conditions:\n    - {null: 3}\n", "mix.conditions[0].None: keys must be strings, got NoneType None"),
    ("a:\n  true: 3\n", "a.True: keys must be strings, got bool True"),
])
def test_load_yaml_rejects_keys_that_are_not_strings(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"^{re.escape(f'{path}: {message}')} \(quote it\)$"):
        load_yaml(path)


def test_load_yaml_names_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"\xff\xfemix: {}\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: not UTF-8 text \(.*byte 0xff in position 0"):
        load_yaml(path)


def test_unknown_keys_of_mixed_types_are_reported_not_sorted_into_a_type_error():
    with pytest.raises(ConfigError, match=r"params.yaml: s.1: unknown key \(allowed: "):
        parse(Outer, {1: "a", "zz": "b"}, "params.yaml: s")


def test_load_yaml_reads_yaml_1_2_as_dvc_does(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("lr: 1e-3\nanswer: yes\nbig: .inf\n")
    assert load_yaml(path) == {"lr": 0.001, "answer": "yes", "big": float("inf")}


@dataclass(frozen=True)
class Train:
    lr: float = 1e-3
    epochs: int = 10


@dataclass(frozen=True)
class Model:
    train: Train = Train(lr=1e-4)


def test_partial_nested_mapping_keeps_field_default_instance():
    cfg = parse(Model, {"train": {"epochs": 3}})
    assert cfg.train == Train(lr=1e-4, epochs=3)
    assert parse(Model, {}).train.lr == 1e-4


def test_empty_nested_section_keeps_the_field_default_instance():
    assert parse(Model, {"train": None}).train == Train(lr=1e-4)
    base = Model(train=Train(lr=0.5, epochs=2))
    assert parse(Model, {"train": None}, base=base).train == base.train
