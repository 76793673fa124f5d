"""Generation options: what a task (`--param`) or a pool (`options`) may set, typed, and how
each lands in a host's request.

One vocabulary for both protocols where they agree (`temperature`, `top_p`, `seed`, `stop`,
`max_tokens`), plus each protocol's own (`num_ctx`, `keep_alive`, `format` for Ollama;
`response_format` for OpenAI). A name a pool's backend does not know is refused at submit,
with the list of the ones it knows, never dropped on the way to the host.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from ygg.errors import InvalidInput

Value = str | int | float | bool | list[Any] | dict[str, Any]


def _number(name: str, value: Value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput(f"must be a number, not {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise InvalidInput(f"must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise InvalidInput(f"must be a finite number, not {value!r}")
    return number


def _whole(name: str, value: Value) -> int:
    number = _number(name, value)
    if not number.is_integer():
        raise InvalidInput(f"must be a whole number, not {value!r}")
    return int(number)


def _words(name: str, value: Value) -> list[str]:
    """`stop`: one string, or a list of strings (JSON)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise InvalidInput(f"must be a string or a list of strings, not {value!r}")


def _format(name: str, value: Value) -> str | dict[str, Any]:
    """`format` / `response_format`: "json", or a JSON object (a schema), as text or JSON."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        if value == "json":
            return value
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    raise InvalidInput(f'must be "json" or a JSON object, not {value!r}')


def _keep_alive(name: str, value: Value) -> str | int:
    """Ollama's `keep_alive`: seconds, or a duration such as "5m"."""
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        return value
    return _whole(name, value)


Parse = Callable[[str, Value], Any]
_PARSE: dict[str, Parse] = {
    "max_tokens": _whole,
    "temperature": _number,
    "top_p": _number,
    "seed": _whole,
    "stop": _words,
    "num_ctx": _whole,
    "num_predict": _whole,
    "keep_alive": _keep_alive,
    "format": _format,
    "response_format": _format,
}
# Per backend: the option names it takes. `max_tokens` and `num_predict` are one option for
# Ollama (its `num_predict`), so a task can say `max_tokens` whatever the host.
KNOWN = {
    "ollama": ("max_tokens", "num_predict", "num_ctx", "temperature", "top_p", "seed", "stop",
               "format", "keep_alive"),
    "openai": ("max_tokens", "temperature", "top_p", "seed", "stop", "response_format"),
}  # fmt: skip
# Params every HTTP pool takes besides its options.
REQUEST_PARAMS = ("model", "system")


def parse(backend: str, name: str, value: Value) -> Any:
    """`value` as the option `name` takes it on `backend`; else InvalidInput saying what is
    wrong with it, as the end of a sentence about it ("must be a number, not 'hot'")."""
    known = KNOWN.get(backend, ())
    if name not in known:
        raise InvalidInput(f"is not an option {backend} pools know ({', '.join(known)})")
    return _PARSE[name](name, value)


def ollama_fields(options: Mapping[str, Any]) -> dict[str, Any]:
    """The request fields for Ollama's /api/chat: `options`, `format`, `keep_alive`."""
    fields: dict[str, Any] = {}
    model_options = {
        ("num_predict" if name == "max_tokens" else name): value
        for name, value in options.items()
        if name not in ("format", "keep_alive")
    }
    if model_options:
        fields["options"] = model_options
    for name in ("format", "keep_alive"):
        if name in options:
            fields[name] = options[name]
    return fields


def openai_fields(options: Mapping[str, Any]) -> dict[str, Any]:
    """The request fields for /chat/completions; `response_format: "json"` is JSON mode."""
    fields = dict(options)
    if fields.get("response_format") == "json":
        fields["response_format"] = {"type": "json_object"}
    return fields
