"""The schema engine: a config section is a mapping of key to :class:`Field`, checked at load.

A :class:`Field` states the Python types a value may have, its default (or :data:`REQUIRED`),
its allowed choices, a numeric range (inclusive ``minimum``/``maximum``, exclusive
``above``/``below``), the :class:`Field` of every element of a list, the schema of a nested
section, and an optional custom check. :func:`validate_section` checks a
section against its schema and returns a plain dict with every default filled in; every problem
(an unknown key, a missing required key, a wrong type, a value out of range or not among the
choices) raises :class:`~jaxrobust.errors.ConfigError` naming the key's full path.

Type rules: an ``int`` is accepted where a ``float`` is (and converted); a ``bool`` is never an
``int`` or ``float``; ``list`` and ``tuple`` are interchangeable (the given one is kept); ``None``
is accepted only when the default is ``None`` or the types include ``type(None)``. A field of
type ``dict`` without a schema is an open dict: any keys.

Number rules: a float must be finite (NaN and +-inf are refused unless the field says
``finite=False``), and an integer must fit in 64 bits (``|value| <= INT_LIMIT``), whatever the
field's own range.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections

from jaxrobust.errors import ConfigError
from jaxrobust.registry import UnknownNameError, closest_match, unknown_name_message


class _Required:
    """The type of :data:`REQUIRED`: a default that says the key must be given."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"

    def __reduce__(self):
        return (_Required, ())

    def __deepcopy__(self, memo):
        return self


#: Default of a :class:`Field` that must be given in the config.
REQUIRED: Any = _Required()

_NONE = type(None)

#: The largest integer magnitude any config value may have (int64): a larger one cannot become
#: an array size, index or seed.
INT_LIMIT = 2**63 - 1


@dataclasses.dataclass(frozen=True)
class Field:
    """One config key: accepted types, default, choices, range, elements, section, check.

    Attributes:
      types: the accepted Python type or types (``float`` accepts ``int``; ``list`` and
        ``tuple`` are interchangeable; ``dict`` accepts a dict or an ``ml_collections``
        ``ConfigDict``).
      default: the value filled in when the key is absent; :data:`REQUIRED` if it must be given.
      choices: the allowed values, or None for any.
      minimum, maximum: inclusive numeric bounds, or None.
      above, below: exclusive numeric bounds (``value > above``, ``value < below``), or None.
      finite: whether a float must be finite (NaN and +-inf refused); True by default.
      items: the :class:`Field` every element of a list/tuple value is checked with.
      schema: the schema of a nested section (a dict value); None with ``types=dict`` is an open
        dict.
      check: ``check(value, path) -> value``, run last on the checked value; raises ConfigError.
      help: what the key means, quoted in error messages.

    Examples:
      >>> epochs = Field(int, REQUIRED, minimum=1, help="passes over the training set")
      >>> epochs.required, describe(epochs)
      (True, 'a positive integer')
      >>> describe(Field(float, 1e-3, above=0.0))
      'a number > 0'
      >>> Field(float, None).type_tuple
      (<class 'float'>, <class 'NoneType'>)
    """

    types: type | tuple[type, ...]
    default: Any = REQUIRED
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    items: Field | None = None
    schema: Mapping[str, Field] | None = None
    check: Callable[[Any, str], Any] | None = None
    help: str = ""
    above: float | None = None
    below: float | None = None
    finite: bool = True

    def __post_init__(self) -> None:
        types = self.types if isinstance(self.types, tuple) else (self.types,)
        if not types or not all(isinstance(t, type) for t in types):
            raise TypeError(f"Field.types must be a type or a tuple of types, got {self.types!r}.")
        if self.schema is not None and dict not in types:
            raise TypeError("A Field with a schema (a nested section) must accept dict.")
        for name in ("minimum", "maximum", "above", "below"):
            bound = getattr(self, name)
            if bound is not None and (isinstance(bound, bool) or not math.isfinite(bound)):
                raise TypeError(f"Field.{name} must be a finite number or None, got {bound!r}.")

    @property
    def bounded(self) -> bool:
        """Whether the field has a numeric range (minimum, maximum, above or below)."""
        return any(b is not None for b in (self.minimum, self.maximum, self.above, self.below))

    def in_range(self, value: float) -> bool:
        """Whether the number ``value`` is inside the field's range (NaN never is).

        Examples:
          >>> Field(float, 0.5, above=0.0, maximum=1.0).in_range(1.0)
          True
          >>> Field(float, 0.5, above=0.0, maximum=1.0).in_range(0.0)
          False
        """
        if isinstance(value, float) and math.isnan(value):
            return False
        return (
            (self.minimum is None or value >= self.minimum)
            and (self.maximum is None or value <= self.maximum)
            and (self.above is None or value > self.above)
            and (self.below is None or value < self.below)
        )

    @property
    def type_tuple(self) -> tuple[type, ...]:
        """``types`` as a tuple, with ``type(None)`` added when the default is None."""
        types = self.types if isinstance(self.types, tuple) else (self.types,)
        if self.default is None and _NONE not in types:
            types = (*types, _NONE)
        return types

    @property
    def required(self) -> bool:
        """Whether the key must be given (no default)."""
        return self.default is REQUIRED


#: A config section's schema: key -> :class:`Field`.
Schema = Mapping[str, Field]


def describe(field: Field) -> str:
    """What ``field`` accepts, in words, e.g. ``'a positive integer'`` or ``"one of ['a']"``.

    Examples:
      >>> describe(Field(int, 1, minimum=1))
      'a positive integer'
      >>> describe(Field(float, 0.5, minimum=0.0, maximum=1.0))
      'a number in [0, 1]'
      >>> describe(Field(float, 0.9, minimum=0.0, below=1.0))
      'a number in [0, 1)'
      >>> describe(Field(str, "min", choices=("min", "max")))
      "one of ['min', 'max']"
    """
    if field.choices is not None:
        return f"one of {list(field.choices)}"
    types = [t for t in field.type_tuple if t is not _NONE]
    words = []
    for t in types:
        if t is int:
            words.append(_number_words("integer", field))
        elif t is float:
            if int in types:
                continue
            words.append(_number_words("number", field))
        elif t is bool:
            words.append("True or False")
        elif t is str:
            words.append("a string")
        elif t in (list, tuple):
            if "a list" not in words:
                words.append("a list")
        elif t is dict:
            words.append("a section (dict)")
        else:
            words.append(f"a {t.__name__}")
    if _NONE in field.type_tuple:
        words.append("None")
    return " or ".join(words)


def _bound(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _number_words(noun: str, field: Field) -> str:
    a = f"a{'n' if noun[0] in 'aeiou' else ''} {noun}"
    low = (field.minimum, "[", ">=") if field.minimum is not None else None
    if field.above is not None and (low is None or field.above >= low[0]):
        low = (field.above, "(", ">")
    high = (field.maximum, "]", "<=") if field.maximum is not None else None
    if field.below is not None and (high is None or field.below <= high[0]):
        high = (field.below, ")", "<")
    upper = f" {high[2]} {_bound(high[0])}" if high is not None else ""
    if low is not None and low[2] == ">=" and low[0] in (0, 1) and noun == "integer":
        return ("a positive integer" if low[0] == 1 else "a non-negative integer") + upper
    if low is not None and low[2] == ">=" and low[0] == 0 and high is None:
        return f"a non-negative {noun}"
    if low is not None and high is not None:
        return f"{a} in {low[1]}{_bound(low[0])}, {_bound(high[0])}{high[1]}"
    if low is not None:
        return f"{a} {low[2]} {_bound(low[0])}"
    return a + upper


def plain(values: Any) -> Any:
    """``values`` with every ``ConfigDict`` (at any depth) turned into a plain dict.

    Examples:
      >>> import ml_collections
      >>> plain(ml_collections.ConfigDict({"a": {"b": 1}, "c": [1, 2]}))
      {'a': {'b': 1}, 'c': [1, 2]}
    """
    if isinstance(values, ml_collections.ConfigDict):
        values = values.to_dict()
    if isinstance(values, Mapping):
        return {k: plain(v) for k, v in values.items()}
    if isinstance(values, list):
        return [plain(v) for v in values]
    if isinstance(values, tuple):
        return tuple(plain(v) for v in values)
    return values


def _is_mapping(value: Any) -> bool:
    return isinstance(value, (Mapping, ml_collections.ConfigDict))


def validate_section(values: Any, schema: Schema, where: str) -> dict:
    """``values`` checked against ``schema``: a plain dict with every default filled in.

    Args:
      values: a Mapping, ``ml_collections.ConfigDict`` or None (an empty section).
      schema: key -> :class:`Field`.
      where: the section's path, e.g. ``"config.models.vae.training"``, for error messages.

    Raises:
      ConfigError: an unknown key (with the closest known key), a missing required key, a wrong
        type, a value out of range or not among the choices, or a failed custom check.

    Examples:
      >>> schema = {"num_epochs": Field(int, minimum=1), "lr": Field(float, 1e-3)}
      >>> validate_section({"num_epochs": 3}, schema, "config.training")
      {'num_epochs': 3, 'lr': 0.001}
      >>> validate_section({"num_epochs": 3, "lr": 1}, schema, "config.training")["lr"]
      1.0
      >>> try:
      ...     validate_section({"num_epochs": 3, "lrr": 0.1}, schema, "config.training")
      ... except ConfigError as err:
      ...     print(err)
      Unknown key 'lrr' in config.training; did you mean 'lr'? Known: ['lr', 'num_epochs'].
      >>> try:
      ...     validate_section({"num_epochs": 0}, schema, "config.training")
      ... except ConfigError as err:
      ...     print(err)
      config.training.num_epochs must be a positive integer, got 0.
    """
    if values is None:
        values = {}
    if not _is_mapping(values):
        raise ConfigError(
            f"{where} must be a section (a dict or ConfigDict with keys {sorted(schema)}), got "
            f"{values!r} ({type(values).__name__})."
        )
    values = plain(values)
    for key in values:
        if key not in schema:
            raise UnknownNameError(unknown_name_message("key", key, schema, where))
    out = {}
    for key, field in schema.items():
        path = f"{where}.{key}"
        if key in values:
            out[key] = validate_value(values[key], field, path)
        elif field.required:
            hint = f" ({field.help})" if field.help else ""
            flag = path.split(".", 1)[1] if path.startswith("config.") else path
            raise ConfigError(
                f"{path} is required{hint}: set it in the config file or with "
                f"--config.{flag}=VALUE."
            )
        else:
            out[key] = validate_value(copy.deepcopy(field.default), field, path)
    return out


def validate_value(value: Any, field: Field, path: str) -> Any:
    """One value checked against ``field`` (see :func:`validate_section`); returns it converted.

    Examples:
      >>> validate_value(2, Field(float, 1.0), "config.lr")
      2.0
      >>> validate_value([1, 2], Field(tuple, (), items=Field(int)), "config.features")
      [1, 2]
      >>> try:
      ...     validate_value(True, Field(int, 0), "config.seed")
      ... except ConfigError as err:
      ...     print(err)
      config.seed must be an integer, got True (bool).
    """
    types = field.type_tuple
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
        value = int(value)  # e.g. numpy integers
    elif isinstance(value, numbers.Real) and not isinstance(value, (bool, int, float)):
        value = float(value)
    if value is None:
        if _NONE in types:
            return None
        return _type_error(value, field, path)
    if _is_mapping(value):
        if dict not in types:
            return _type_error(value, field, path)
        if field.schema is not None:
            value = validate_section(value, field.schema, path)
        else:
            value = plain(value)
    elif isinstance(value, (list, tuple)):
        if list not in types and tuple not in types:
            return _type_error(value, field, path)
        if field.items is not None:
            checked = [validate_value(v, field.items, f"{path}[{i}]") for i, v in enumerate(value)]
            value = type(value)(checked)
        else:
            value = plain(value)
    elif isinstance(value, bool):
        if bool not in types:
            return _type_error(value, field, path)
    elif isinstance(value, int):
        if int not in types:
            if float not in types:
                return _type_error(value, field, path)
            value = float(value)
    elif not isinstance(value, tuple(t for t in types if t not in (dict, list, tuple, bool))):
        return _type_error(value, field, path)
    if field.choices is not None and value not in field.choices:
        match = closest_match(str(value), [str(c) for c in field.choices])
        hint = f" (did you mean {match!r}?)" if match is not None else ""
        raise ConfigError(
            f"{path} must be one of {list(field.choices)}, got {value!r}{hint}."
            + (f" {field.help}" if field.help else "")
        )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        hint = f" ({field.help})" if field.help else ""
        if isinstance(value, float) and field.finite and not math.isfinite(value):
            raise ConfigError(
                f"{path} must be {describe(field)}{hint}, got {value!r}: NaN and infinity are "
                "not accepted; give a finite number."
            )
        if not field.in_range(value):
            raise ConfigError(f"{path} must be {describe(field)}{hint}, got {value!r}.")
        if isinstance(value, int) and abs(value) > INT_LIMIT:
            raise ConfigError(
                f"{path} must be {describe(field)}{hint}, got {value!r}: larger than any 64-bit "
                f"integer (|value| <= {INT_LIMIT})."
            )
    if field.check is not None:
        value = field.check(value, path)
    return value


def _type_error(value: Any, field: Field, path: str):
    hint = f" ({field.help})" if field.help else ""
    raise ConfigError(
        f"{path} must be {describe(field)}{hint}, got {value!r} ({type(value).__name__})."
    )
