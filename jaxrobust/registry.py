"""Open registries: model kinds, networks, posterior methods and evaluation tasks by name.

Extension is by registration, from inside or outside the package::

    import jaxrobust as jr

    jr.register_model("my_kind", build_my_model, schema={"width": jr.config.Field(int, 8)})

Every registry reports an unknown name the same way (:class:`UnknownNameError`, a
:class:`~jaxrobust.errors.ConfigError`): what was looked up, where, the closest match and the
known names.

Example:
    >>> from jaxrobust.registry import Registry
    >>> colours = Registry("colour")
    >>> colours.register("red", 1)
    >>> colours.get("red")
    1
    >>> try:
    ...     colours.get("rde", where="config.paint")
    ... except UnknownNameError as err:
    ...     print(err)
    Unknown colour 'rde' in config.paint; did you mean 'red'? Known: ['red'].
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from jaxrobust.errors import ConfigError

T = TypeVar("T")


class UnknownNameError(ConfigError, KeyError):
    """A name that no registry entry (or no config key) has."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def closest_match(name: str, known) -> str | None:
    """The known name most similar to ``name`` (difflib ratio >= 0.6), or None."""
    matches = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_name_message(what: str, name: Any, known, where: str = "") -> str:
    """The one error format: ``Unknown <what> <name> [in <where>]; did you mean ...? Known:
    [...]``."""
    known = sorted(str(k) for k in known)
    text = f"Unknown {what} {name!r}" + (f" in {where}" if where else "")
    match = closest_match(str(name), known)
    if match is not None:
        text += f"; did you mean {match!r}?"
    else:
        text += ";"
    return f"{text} Known: {known}."


class Registry(Generic[T]):
    """Names to entries. ``register`` refuses to overwrite unless ``overwrite=True``."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, overwrite: bool = False) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"A {self.what} name must be a non-empty string, got {name!r}.")
        if name in self._entries and not overwrite:
            raise ConfigError(
                f"A {self.what} named {name!r} is already registered; pass overwrite=True to "
                "replace it."
            )
        self._entries[name] = entry

    def get(self, name: str, *, where: str = "") -> T:
        if name not in self._entries:
            raise UnknownNameError(unknown_name_message(self.what, name, self._entries, where))
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


#: Model kinds (``config.models.<name>.kind``): :class:`jaxrobust.models.ModelKind` entries.
MODELS: Registry = Registry("model kind")
#: Classifier networks (``architecture.network``): ``factory(num_classes, **options)``.
NETWORKS: Registry = Registry("network")
#: Posterior methods (``training.posterior.method``): :class:`jaxrobust.inference.PosteriorMethod`.
POSTERIORS: Registry = Registry("posterior method")
#: Evaluation tasks (keys of ``config.evaluate``): :class:`jaxrobust.evaluate.EvaluationTask`.
EVALUATIONS: Registry = Registry("evaluation task")
