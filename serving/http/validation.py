"""The one translator from validation errors to the error vocabulary.

msgspec (request bodies, retrain form fields) and Litestar (query parameters, which it checks
with msgspec) describe a refused value in msgspec's words: ``Expected `int` >= 0 - at
`$[2].Age```. This module turns such an error into an ``InvalidInputError`` (a body) or an
``InvalidParameterError`` (a query parameter) whose message a person can act on, ``Age must be
a whole number from 0 to 120 (got -5)``, beside the machine-readable ``field``, ``index`` and
``expected``. What a value accepts is a ``Rule``, built from the declaration that enforces it
(the feature contract's ``FieldSpec``, a msgspec ``Struct``, a Litestar parameter), never from
a second copy of the ranges.

msgspec's message does not carry the refused value, so the translators take the request's
document as a callable: it is decoded again, untyped, only when an error is being answered.
Values are cut to ``SHOWN_CHARS`` so that an error never echoes a large input.
"""

from __future__ import annotations

import json
import math
import re
import types
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final, Literal, Union, get_args, get_origin

import msgspec
from litestar.typing import FieldDefinition

from drugclf.contract import FieldSpec
from serving.http.errors import InvalidInputError, InvalidParameterError

SHOWN_CHARS: Final = 40
"""Longest refused value an error message repeats (longer ones are cut)."""

Kind = Literal["integer", "number", "category", "boolean", "datetime", "string"]

# msgspec messages end in " - at `$[3].Age`"; the path names the batch index and the field.
_PATH: Final = re.compile(r" - at `\$(?:\[(?P<index>\d+)\])?(?:\.(?P<field>\w+))?`$")
_NAMED_FIELD: Final = re.compile(r"field `(?P<field>[^`]+)`")
_UNKNOWN: Final = "Object contains unknown field"
_MISSING: Final = "Object missing required field"
_NO_VALUE: Final = object()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    """What one value accepts, in the two wordings errors use (``expected`` and ``must``)."""

    name: str
    kind: Kind
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    finite: bool = False
    """Say "a finite number" (the contract's ratio) rather than "a number"."""
    max_length: int | None = None

    @classmethod
    def of_field(cls, spec: FieldSpec) -> Rule:
        """A patient field, from the feature contract."""
        return cls(
            name=spec.name,
            kind=spec.type,
            allowed=spec.allowed,
            minimum=spec.minimum,
            maximum=spec.maximum,
            exclusive_minimum=spec.exclusive_minimum,
            finite=spec.type == "number",
        )

    @property
    def expected(self) -> str:
        """The machine-readable wording (``an integer >= 0 and <= 120``) of the ``expected`` key."""
        if self.kind == "category":
            return "one of " + ", ".join(self.allowed or ())
        if self.kind == "boolean":
            return "true or false"
        if self.kind == "datetime":
            return "an ISO 8601 date and time"
        if self.kind == "string":
            limit = self.max_length
            return "a string" if limit is None else f"a string of at most {limit} characters"
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.exclusive_minimum else '>='} {_number(self.minimum)}")
        if self.maximum is not None:
            bounds.append(f"{'<' if self.exclusive_maximum else '<='} {_number(self.maximum)}")
        kind = {"integer": "an integer", "number": "a number"}[self.kind]
        if self.finite:
            kind = "a finite number"
        return " ".join([kind, " and ".join(bounds)]) if bounds else kind

    @property
    def must(self) -> str:
        """The wording for people: ``a whole number from 0 to 120``."""
        if self.kind == "category":
            return "one of " + ", ".join(self.allowed or ())
        if self.kind == "boolean":
            return "true or false"
        if self.kind == "datetime":
            return "a date and time in ISO 8601, such as 2026-01-31T09:30:00Z"
        if self.kind == "string":
            limit = self.max_length
            return "a string" if limit is None else f"a string of at most {limit} characters"
        noun = "a whole number" if self.kind == "integer" else "a number"
        span = self._span()
        return f"{noun} {span}" if span else noun

    def _span(self) -> str:
        low, high = self.minimum, self.maximum
        inclusive = not self.exclusive_minimum and not self.exclusive_maximum
        if low is not None and high is not None and inclusive:
            return f"from {_number(low)} to {_number(high)}"
        parts = []
        if low is not None:
            above = "greater than " if self.exclusive_minimum else "at least "
            parts.append(above + _number(low))
        if high is not None:
            below = "less than " if self.exclusive_maximum else "at most "
            parts.append(below + _number(high))
        span = " and ".join(parts)
        return f"of {span}" if span.startswith("at ") else span


def rules_of(struct: type[msgspec.Struct]) -> dict[str, Rule]:
    """The rule of each field of a msgspec ``Struct`` (its ``Meta`` bounds, literals, types)."""
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    return {
        field.encode_name: _rule_of_type(field.encode_name, field.type) for field in info.fields
    }


def _rule_of_type(name: str, info: msgspec.inspect.Type) -> Rule:
    if isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    if isinstance(info, msgspec.inspect.LiteralType):
        return Rule(name=name, kind="category", allowed=tuple(str(v) for v in info.values))
    if isinstance(info, msgspec.inspect.BoolType):
        return Rule(name=name, kind="boolean")
    if isinstance(info, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        return Rule(
            name=name,
            kind="integer" if isinstance(info, msgspec.inspect.IntType) else "number",
            minimum=info.gt if info.gt is not None else info.ge,
            maximum=info.lt if info.lt is not None else info.le,
            exclusive_minimum=info.gt is not None,
            exclusive_maximum=info.lt is not None,
        )
    if isinstance(info, msgspec.inspect.DateTimeType):
        return Rule(name=name, kind="datetime")
    if isinstance(info, msgspec.inspect.StrType):
        return Rule(name=name, kind="string", max_length=info.max_length)
    raise TypeError(f"no rule for {name}: {info!r}")  # pragma: no cover - a new field type


_PARAMETER_KINDS: Final[dict[object, Kind]] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    datetime: "datetime",
    str: "string",
}


def parameter_rule(definition: FieldDefinition) -> Rule | None:
    """The rule of a Litestar handler parameter (its type and ``Parameter`` bounds), if known."""
    annotation = definition.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        options = [arg for arg in get_args(annotation) if arg is not type(None)]
        annotation = options[0] if len(options) == 1 else None
    if get_origin(annotation) is Literal:
        allowed = tuple(map(str, get_args(annotation)))
        return Rule(name=definition.name, kind="category", allowed=allowed)
    kind = _PARAMETER_KINDS.get(annotation)
    if kind is None:
        return None
    kwargs = definition.kwarg_definition
    low, high = getattr(kwargs, "gt", None), getattr(kwargs, "lt", None)
    return Rule(
        name=definition.name,
        kind=kind,
        minimum=low if low is not None else getattr(kwargs, "ge", None),
        maximum=high if high is not None else getattr(kwargs, "le", None),
        exclusive_minimum=low is not None,
        exclusive_maximum=high is not None,
        max_length=getattr(kwargs, "max_length", None),
    )


# --- showing the refused value --------------------------------------------------------------


class _Literal(str):
    """A number JSON holds but a float cannot (``1e400``), shown as it was written."""

    __slots__ = ()


def _float(text: str) -> float | _Literal:
    value = float(text)
    return value if math.isfinite(value) else _Literal(text)


def untyped(body: bytes) -> object:
    """A JSON body decoded without a type, to find a refused value in (error path only).

    Returns ``_NO_VALUE`` when it cannot be decoded (the typed decoder already said why).
    """
    try:
        return msgspec.json.decode(body)
    except msgspec.ValidationError:  # a number beyond float or int64: Python's parser keeps it
        try:
            return json.loads(body, parse_float=_float, parse_constant=_Literal)
        except ValueError:
            return _NO_VALUE
    except msgspec.DecodeError:  # pragma: no cover - the typed decoder refused it first
        return _NO_VALUE


def shown(value: object) -> str:
    """A value as JSON, cut to ``SHOWN_CHARS`` characters."""
    if isinstance(value, _Literal):
        text = str(value)
    else:
        if isinstance(value, str) and len(value) > SHOWN_CHARS:
            value = value[:SHOWN_CHARS]  # no need to encode all of a long string
        text = msgspec.json.encode(value).decode()
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def shown_text(text: str) -> str:
    """A query parameter's text as it was sent, cut to ``SHOWN_CHARS`` characters."""
    if not text:
        return '""'
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _got(value: object) -> str:
    return "" if value is _NO_VALUE else f" (got {shown(value)})"


def _lookup(document: object, index: int | None, field: str | None) -> object:
    value = document
    if index is not None:
        if not isinstance(value, list) or index >= len(value):
            return _NO_VALUE
        value = value[index]
    if field is not None:
        if not isinstance(value, dict) or field not in value:
            return _NO_VALUE
        value = value[field]
    return value


# --- the translators ---------------------------------------------------------------------------


class Subject(msgspec.Struct, frozen=True, kw_only=True):
    """What a decoder reads: its fields' rules and how to describe it when its shape is wrong."""

    rules: Mapping[str, Rule]
    body_expected: str
    """What the whole body must be (``expected`` when it is not even the right type)."""
    item_expected: str | None = None
    """What each item of a batch must be, for a body that may be an array of them."""


def invalid_input(
    exc: msgspec.ValidationError, subject: Subject, document: Callable[[], object]
) -> InvalidInputError:
    """A msgspec error on a body (or form) as the error a person can act on.

    Args:
        exc: msgspec's error.
        subject: the rules and shapes of what was decoded.
        document: returns the body decoded without a type (called only here, on the error path).
    """
    text = str(exc)
    index: int | None = None
    field: str | None = None
    match = _PATH.search(text)
    if match:
        text = text[: match.start()]
        index = int(match["index"]) if match["index"] is not None else None
        field = match["field"]
    names = list(subject.rules)
    if text.startswith(_UNKNOWN):
        named = _NAMED_FIELD.search(text)
        name = named["field"] if named else "?"
        return InvalidInputError(
            f"unknown field {shown(name)} (the fields are {', '.join(names)})",
            field=name,
            index=index,
            expected=subject.item_expected,
        )
    if text.startswith(_MISSING):
        named = _NAMED_FIELD.search(text)
        name = named["field"] if named else "?"
        rule = subject.rules.get(name)
        what = f" (it must be {rule.must})" if rule else ""
        return InvalidInputError(
            f"{name} is missing{what}",
            field=name,
            index=index,
            expected=rule.expected if rule else subject.item_expected,
        )
    value = _lookup(document(), index, field)
    rule = subject.rules.get(field) if field is not None else None
    if rule is not None:
        return InvalidInputError(
            f"{field} must be {rule.must}{_got(value)}",
            field=field,
            index=index,
            expected=rule.expected,
        )
    if field is not None:  # pragma: no cover - every decoded field has a rule
        return InvalidInputError(f"{field} is not valid{_got(value)}", field=field, index=index)
    if index is not None and subject.item_expected is not None:
        return InvalidInputError(
            f"each item must be {subject.item_expected}{_got(value)}",
            index=index,
            expected=subject.item_expected,
        )
    return InvalidInputError(
        f"the body must be {subject.body_expected}{_got(value)}", expected=subject.body_expected
    )


def invalid_parameter(name: str, text: str, rule: Rule | None) -> InvalidParameterError:
    """A refused query parameter, named with what it takes and the text that was sent."""
    got = f" (got {shown_text(text)})"
    if rule is None:
        return InvalidParameterError(f"{name} is not a valid value{got}", field=name)
    return InvalidParameterError(
        f"{name} must be {rule.must}{got}", field=name, expected=rule.expected
    )
