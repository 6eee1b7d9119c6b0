"""Request arguments read with their type checked: a wrong one is `invalid <field>: <why>`, never a traceback."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import InvalidArgument


def integer(args: dict[str, Any], field: str, default: int | None = None) -> int:
    value = args.get(field)
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidArgument(field, "missing" if value is None else f"{value!r} is not an integer")
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(field, f"{value!r} is not an integer") from None


def string_list(args: dict[str, Any], field: str) -> list[str]:
    value = args.get(field) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidArgument(field, "must be a list of strings")
    return value


def objects(args: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """A list of JSON objects (breakpoints...); absent is empty."""
    value = args.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidArgument(field, "must be a list of objects")
    return value


def mapping(args: dict[str, Any], field: str) -> dict[str, Any]:
    """A JSON object (a source...); absent is empty."""
    value = args.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(field, "must be an object")
    return value


def existing_file(args: dict[str, Any], field: str) -> str:
    """The absolute path of an existing file named by `field`."""
    value = args.get(field)
    if not value or not isinstance(value, str):
        raise InvalidArgument(field, "missing")
    path = Path(value).expanduser()
    if not path.is_file():
        raise InvalidArgument(field, f"{value}: no such file")
    return str(path.resolve())
