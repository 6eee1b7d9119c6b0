"""JSON for km-runtime through CPython's _json accelerator directly: the json package imports re and enum (about
9 ms), paid on every container start; the accelerator alone costs nothing. Falls back to json elsewhere. (No
typing import either: it pulls in re, collections and contextlib, another ~10 ms.)"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:                       # mypy's view: _json's stubs do not describe the scanner's context object
    from typing import Any
    _json: Any
try:
    import _json
except ImportError:                     # not CPython: the plain module
    _json = None


class _Context:
    """What _json's scanner reads from a json.JSONDecoder."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


def loads(text: str) -> Any:
    """json.loads for a whole document (ValueError when it is not one)."""
    if _json is None:
        import json
        return json.loads(text)
    scan = _json.make_scanner(_Context())
    start = len(text) - len(text.lstrip())
    try:
        value, end = scan(text, start)
    except StopIteration:
        raise ValueError(f"not JSON at character {start}") from None
    if text[end:].strip():
        raise ValueError(f"extra data at character {end}")
    return value


def dumps(value: Any) -> str:
    """json.dumps(value) (compact separators, ASCII)."""
    if _json is None:
        import json
        return json.dumps(value, separators=(",", ":"))

    def default(o):
        raise TypeError(f"{type(o).__name__} is not JSON serializable")
    encode = _json.make_encoder({}, default, _json.encode_basestring_ascii, None, ":", ",", False, False, True)
    return "".join(encode(value, 0))
