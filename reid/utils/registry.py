"""A tiny name -> object registry used for datasets, backbones, heads and methods.

Example:
    >>> BACKBONES = Registry("backbone")
    >>> @BACKBONES.register()
    ... def tiny(**kwargs):
    ...     return "tiny"
    >>> BACKBONES.get("tiny")()
    'tiny'
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from reid.utils.errors import ConfigKeyError


class Registry:
    """Maps lower-case names to objects; registration happens with a decorator.

    Args:
        name: what the registry holds, used in error messages ("dataset", "backbone").
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._obj: dict[str, Any] = {}

    def _add(self, name: str, obj: Any) -> None:
        key = name.lower()
        if key in self._obj:
            raise KeyError(f"{self._name} '{name}' is already registered")
        self._obj[key] = obj

    def register(self, name: str | None = None) -> Callable[[Any], Any]:
        """Decorator registering a class or function under ``name`` (default: its __name__)."""

        def deco(obj: Any) -> Any:
            self._add(name or obj.__name__, obj)
            return obj

        return deco

    def get(self, name: str) -> Any:
        """Return the object registered as ``name``; a KeyError lists the known names."""
        key = name.lower()
        if key not in self._obj:
            known = ", ".join(sorted(self._obj)) or "(none)"
            raise ConfigKeyError(f"unknown {self._name} '{name}'; registered: {known}")
        return self._obj[key]

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._obj

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._obj))

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._obj)
