"""Record: field-wise == and repr for km's plain mutable records, the two things their @dataclass gave them.

Each @dataclass is built by generating and compiling its methods' source when its module is imported: 0.3-0.6 ms
per class, paid by every km start (and every exec inside a payload). The records on the start-up path spell out
their __init__ and take equality and repr from here instead."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import Self


class Record:
    __slots__ = ()
    __hash__ = None     # type: ignore[assignment]  # mutable: unhashable, as an eq=True dataclass

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` applied (dataclasses.replace): shallow, unknown field names refused."""
        values = vars(self)
        unknown = changes.keys() - values.keys()
        if unknown:
            raise TypeError(f"{type(self).__qualname__} has no field {', '.join(sorted(unknown))}")
        copy = object.__new__(type(self))
        vars(copy).update(values, **changes)
        return copy
