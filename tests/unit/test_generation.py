"""Generation options: typed at submit, refused when a backend does not know them, and mapped
to each protocol's request fields."""

from __future__ import annotations

import pytest

from ygg.config.generation import ollama_fields, openai_fields, parse
from ygg.errors import InvalidInput


@pytest.mark.parametrize(
    ("backend", "name", "given", "typed"),
    [
        ("ollama", "temperature", "0.2", 0.2),
        ("openai", "temperature", 1, 1.0),
        ("ollama", "num_ctx", "8192", 8192),
        ("openai", "max_tokens", 64.0, 64),
        ("openai", "seed", "-7", -7),
        ("ollama", "stop", "###", ["###"]),
        ("openai", "stop", ["a", "b"], ["a", "b"]),
        ("ollama", "format", "json", "json"),
        ("ollama", "format", '{"type": "object"}', {"type": "object"}),
        ("openai", "response_format", {"type": "json_object"}, {"type": "json_object"}),
        ("ollama", "keep_alive", "5m", "5m"),
        ("ollama", "keep_alive", "-1", -1),
    ],
)
def test_values_are_typed(backend: str, name: str, given: object, typed: object) -> None:
    assert parse(backend, name, given) == typed  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("backend", "name", "given", "problem"),
    [
        ("ollama", "temperature", "hot", "must be a number, not 'hot'"),
        ("openai", "temperature", "nan", "must be a finite number, not 'nan'"),
        ("openai", "max_tokens", "1.5", "must be a whole number, not '1.5'"),
        ("openai", "seed", True, "must be a number, not True"),
        ("ollama", "stop", [1], "must be a string or a list of strings, not [1]"),
        ("ollama", "format", "yaml", "must be \"json\" or a JSON object, not 'yaml'"),
        ("openai", "num_ctx", 8, "is not an option openai pools know"),
        ("ollama", "response_format", "json", "is not an option ollama pools know"),
        ("command", "temperature", 1, "is not an option command pools know"),
    ],
)
def test_bad_values_and_unknown_names_are_refused(
    backend: str, name: str, given: object, problem: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse(backend, name, given)  # type: ignore[arg-type]
    assert refused.value.message.startswith(problem)


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match=r"\(max_tokens, temperature, top_p, seed, stop, "):
        parse("openai", "num_predict", 1)


def test_ollama_takes_model_options_apart_from_format_and_keep_alive() -> None:
    options = {"max_tokens": 64, "num_ctx": 8192, "temperature": 0.2, "format": "json",
               "keep_alive": "5m", "stop": ["###"]}  # fmt: skip
    assert ollama_fields(options) == {
        "options": {"num_predict": 64, "num_ctx": 8192, "temperature": 0.2, "stop": ["###"]},
        "format": "json",
        "keep_alive": "5m",
    }
    assert ollama_fields({}) == {}


def test_openai_json_mode() -> None:
    assert openai_fields({"response_format": "json", "seed": 1}) == {
        "response_format": {"type": "json_object"},
        "seed": 1,
    }
