"""One small generic registry for everything that has a name (models, datasets, methods)."""

from __future__ import annotations

import difflib
import importlib
from typing import Callable, Generic, Iterable, Iterator, TypeVar

from fewshot_kd.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories. ``register`` is a decorator; ``get`` raises a helpful error.

    ``modules`` names the modules whose import registers the entries; they are imported
    on first lookup (``get``, ``names``, ``describe``, ``in``, ``iter``, ``len``), so a
    registry is complete when read without importing everything up front. ``plural``
    names several of ``kind`` in messages (default: ``kind + "s"``).
    """

    def __init__(self, kind: str, modules: Iterable[str] = (), plural: str | None = None) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.modules = tuple(modules)
        self._loaded = not self.modules
        self._entries: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            self._help[name] = help or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            return obj

        return add

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # set first: the imported modules call register() on us
            for module in self.modules:
                importlib.import_module(module)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: unhashable, so not a name either
            close = difflib.get_close_matches(str(name), self._entries, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Known {self.plural}: {', '.join(sorted(self._entries))}"
            ) from None

    __getitem__ = get

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def describe(self, name: str) -> str:
        self.get(name)
        return self._help[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        try:
            return name in self._entries
        except TypeError:  # unhashable: certainly not a name
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)
