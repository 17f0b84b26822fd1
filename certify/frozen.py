"""An immutable, picklable mapping for the values passed between stages.

``types.MappingProxyType`` cannot be pickled, which kept reports (and everything that carries one)
out of process pools, joblib, Ray and Dask.  :class:`FrozenDict` is a ``dict`` whose mutating methods
raise ``TypeError``; it pickles, copies and serialises to JSON like a dict.

>>> import pickle
>>> d = FrozenDict({"a": 1})
>>> d["a"], pickle.loads(pickle.dumps(d)) == {"a": 1}
(1, True)
>>> d["b"] = 2
Traceback (most recent call last):
...
TypeError: 'FrozenDict' object does not support item assignment
"""

from __future__ import annotations

from typing import Any, NoReturn


class FrozenDict(dict):  # type: ignore[type-arg]
    """A read-only ``dict``."""

    __slots__ = ()

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"'{type(self).__name__}' object does not support item assignment")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]
    __ior__ = _readonly  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        import copy

        return type(self)({k: copy.deepcopy(v, memo) for k, v in self.items()})

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"
