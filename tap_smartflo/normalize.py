"""Pure functions that give every value leaving the tap one type and one format.

Smartflo writes times in at least eight ways (``+0000``, ``+0530``, ``Z`` with
milliseconds, naive ``Y-m-d H:i:s`` in IST, ``d-m-Y H:i:s``, epoch seconds, Mongo's
``{"$date": {"$numberLong": "<epoch ms>"}}``) and ids as numbers or numeric strings.
Everything here turns those into one shape: UTC RFC 3339 with a colon in the offset,
and integers for numeric ids.

The API is written in PHP, whose JSON encoder writes an empty object as ``[]`` and a
list with gaps in its keys as ``{"0": ..., "2": ...}``: containers are read with that
in mind, so that each field leaves with the one JSON type its schema declares.
"""

from __future__ import annotations

import contextlib
import json
import typing as t
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pendulum
import pendulum.parsing.exceptions

UTC = timezone.utc
#: Smartflo is an Indian service: a time without an offset is India Standard Time.
IST = timezone(timedelta(hours=5, minutes=30), "IST")

#: Values that mean "no time" (MySQL zero dates, empty strings).
_NO_TIME = frozenset({"", "0000-00-00 00:00:00", "0000-00-00", "0000-00-00T00:00:00"})
_NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%d-%m-%Y %H:%M:%S", "%Y-%m-%d %H:%M")
_SECONDS_LEN = 19  # len("2024-05-08T12:45:03")
#: Epoch times as digits: seconds (9-10 digits) or milliseconds (12-13). Others,
#: such as 20240508, are not taken for epochs.
_EPOCH_DIGITS = frozenset({9, 10, 12, 13})
_EPOCH_MILLISECONDS = 1e11
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class NormalizationError(ValueError):
    """A value from the API could not be given the type the schema promises."""


def parse_time(value: object, *, naive_tz: timezone = IST) -> datetime | None:
    """Parse any Smartflo time into an aware datetime; None for an empty time.

    Naive times are read in ``naive_tz`` (IST unless the endpoint says otherwise).

    Raises:
        NormalizationError: if the value is not a time in any known format.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        msg = f"{value!r} is not a time"
        raise NormalizationError(msg)
    if isinstance(value, int | float | Decimal):
        return _from_epoch(value)
    if isinstance(value, dict):
        return _from_mongo_date(value)
    if not isinstance(value, str):
        msg = f"{value!r} is not a time"
        raise NormalizationError(msg)
    text = value.strip()
    if text in _NO_TIME:
        return None
    if text.isdigit() and len(text) in _EPOCH_DIGITS:
        return _from_epoch(int(text))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = _parse_other(text, naive_tz)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=naive_tz)
    return parsed


def _from_epoch(value: float | Decimal) -> datetime:
    """Epoch seconds (or milliseconds, which some Smartflo fields use)."""
    seconds = float(value)
    if abs(seconds) >= _EPOCH_MILLISECONDS:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        msg = f"{value!r} is not a time"
        raise NormalizationError(msg) from None


def _from_mongo_date(value: dict[str, t.Any]) -> datetime:
    """A date in MongoDB's extended JSON, as the broadcast leads endpoint sends them.

    Canonical ``{"$date": {"$numberLong": "<epoch ms>"}}``, and the relaxed forms
    ``{"$date": "<ISO 8601>"}`` and ``{"$date": <epoch ms>}``. Milliseconds are
    counted exactly (no float), whatever their size.
    """
    inner = value.get("$date") if len(value) == 1 else None
    if isinstance(inner, dict) and inner.keys() == {"$numberLong"}:
        inner = inner["$numberLong"]
        inner = int(inner) if isinstance(inner, str) and _is_integer(inner) else None
    if isinstance(inner, int) and not isinstance(inner, bool):
        return _EPOCH + timedelta(milliseconds=inner)
    if isinstance(inner, str):
        return t.cast("datetime", parse_time(inner, naive_tz=UTC))
    msg = f"{value!r} is not a time"
    raise NormalizationError(msg)


def _is_integer(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _parse_other(text: str, naive_tz: timezone) -> datetime:
    """The slow path: ISO 8601 forms older Pythons reject, then Smartflo's own."""
    offset = naive_tz.utcoffset(None)
    try:
        parsed = pendulum.parse(
            text, tz=pendulum.FixedTimezone(int(offset.total_seconds()))
        )
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        return _parse_naive(text)
    if not isinstance(parsed, datetime):
        msg = f"{text!r} is not a date-time"
        raise NormalizationError(msg)
    return parsed


def _parse_naive(text: str) -> datetime:
    for fmt in _NAIVE_FORMATS:
        try:
            return datetime.strptime(text, fmt)  # noqa: DTZ007 (zone set by caller)
        except ValueError:  # noqa: PERF203 (the slow path, for rare formats)
            continue
    msg = f"{text!r} is not a time in any format Smartflo is known to use"
    raise NormalizationError(msg)


#: The format of ``updated_after`` and similar query times: naive wall-clock time.
#: The tap sends UTC wall-clock time. A server that reads it as UTC gets exactly what
#: was meant; one that reads it as IST (UTC+05:30, Smartflo's home) is asked for
#: 5.5 hours *more*, never less. The tap drops what falls before the bound it meant.
QUERY_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def query_time(moment: datetime, zone: timezone = UTC) -> str:
    """Format a time for a Smartflo query parameter, as wall-clock time in ``zone``."""
    return moment.astimezone(zone).strftime(QUERY_TIME_FORMAT)


def format_utc(moment: datetime) -> str:
    """Format an aware datetime as UTC RFC 3339 (``2024-05-08T12:45:03+00:00``)."""
    return moment.astimezone(UTC).isoformat()


def to_utc_rfc3339(value: object, *, naive_tz: timezone = IST) -> str | None:
    """Return any Smartflo time as UTC RFC 3339 with a colon in the offset.

    The two shapes the contacts endpoint really sends (``...+0000`` and
    ``...+00:00``) are rewritten without parsing: this runs for every timestamp of
    every record.
    """
    if value is None:
        return None
    if value.__class__ is str:
        text: str = value  # type: ignore[assignment]
        if len(text) == 24 and text.endswith("+0000") and text[10] == "T":  # noqa: PLR2004
            return text[:_SECONDS_LEN] + "+00:00"
        if len(text) == 25 and text.endswith("+00:00") and text[10] == "T":  # noqa: PLR2004
            return text
    moment = parse_time(value, naive_tz=naive_tz)
    return None if moment is None else format_utc(moment)


def to_int(value: object) -> int | None:
    """Return an id that arrived as a number or a numeric string as an integer.

    Raises:
        NormalizationError: for anything that is not a whole number.
    """
    if value is None:
        return None
    if value.__class__ is int:
        return t.cast("int", value)
    if isinstance(value, str):
        text = value.strip()
        if _is_integer(text):
            return int(text)
        if text == "":
            return None
    elif isinstance(value, float | Decimal) and value == int(value):
        return int(value)
    msg = f"{value!r} is not a whole number"
    raise NormalizationError(msg)


def to_id_text(value: object) -> str | None:
    """Return an id that arrived as text or as a number as text (numbers in decimal).

    Raises:
        NormalizationError: for anything that is neither text nor a number.
    """
    if value is None or value.__class__ is str:
        return t.cast("str | None", value)
    if value.__class__ is int:
        return str(value)
    if isinstance(value, float | Decimal):
        return str(int(value)) if value == int(value) else str(value)
    msg = f"{value!r} is not an id"
    raise NormalizationError(msg)


def date_time_text(date: object, time: object) -> str | None:
    """Join a separate date and time (``2024-05-09``, ``11:52:14``) into one text.

    None when either part is missing; the result is read like any other time.
    """
    if not date or not time:
        return None
    return f"{date} {time}"


def json_in_text(value: object) -> object:
    """A JSON document the API sent as text (``'["Name"]'``), decoded.

    Anything else is returned as it is, text that is not JSON included: the
    field's converter then gives it the field's one type (``"Name"`` where a list
    belongs becomes ``["Name"]``), so nothing is lost. Empty text is no value.
    Fractions stay exact, as in the rest of the page.
    """
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return json.loads(value, parse_float=Decimal)
    except ValueError:
        return value


def decoded(name: str) -> Source:
    """The raw value of the field ``name``, a JSON document sent as text, decoded."""
    return lambda raw: json_in_text(raw.get(name))


def to_text(value: object) -> str | None:
    """Return a free-form value as text (JSON for numbers, booleans and structures)."""
    if value is None or value.__class__ is str:
        return value  # type: ignore[return-value]
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=_json_number)


def _json_number(value: object) -> object:
    """Decimals (how the tap parses JSON fractions) stay numbers inside JSON text."""
    if isinstance(value, Decimal):
        return float(value) if value != int(value) else int(value)
    return str(value)


def to_number(value: object) -> Decimal | int | None:
    """Return a number that arrived as a number or a numeric string (exactly)."""
    if value is None or value.__class__ in {int, Decimal}:
        return value  # type: ignore[return-value]
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return None
        if _is_integer(text):
            return int(text)
        with contextlib.suppress(ArithmeticError):
            number = Decimal(text)
            if number.is_finite():
                return number
    msg = f"{value!r} is not a number"
    raise NormalizationError(msg)


def to_bool(value: object) -> bool | None:
    """Return a flag that arrived as a boolean, 0/1 or "true"/"false"."""
    if value is None or value.__class__ is bool:
        return t.cast("bool | None", value)
    if value in {0, 1, "0", "1"}:
        return bool(int(t.cast("int | str", value)))
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    msg = f"{value!r} is not a boolean"
    raise NormalizationError(msg)


Converter = t.Callable[[t.Any], t.Any]
#: Computes a field's raw value from the whole raw object (for fields the API splits).
Source = t.Callable[[t.Mapping[str, t.Any]], object]

#: How Smartflo writes "no value" where a number belongs (``agent_ring_time: "N.A."``).
_NOT_AVAILABLE = frozenset({"n.a.", "n/a", "na", "-"})


def not_available_as_null(convert: Converter) -> Converter:
    """Wrap ``convert`` so that a "not available" placeholder such as "N.A." is None.

    Any other value goes to ``convert`` unchanged, so nonsense is still an error.
    """

    def wrapped(value: object) -> t.Any:  # noqa: ANN401
        if isinstance(value, str) and value.strip().lower() in _NOT_AVAILABLE:
            return None
        return convert(value)

    return wrapped


def _types(schema: dict[str, t.Any]) -> set[str]:
    declared = schema.get("type", "string")
    return {declared} if isinstance(declared, str) else set(declared)


#: Whether the catalog selects the property at a breadcrumb
#: (``("properties", "agent", "properties", "name")``).
Selection = t.Callable[[tuple[str, ...]], bool]


def converter_for(  # noqa: PLR0911 (one return per JSON type)
    schema: dict[str, t.Any],
    *,
    naive_tz: timezone = IST,
    selected: Selection | None = None,
    breadcrumb: tuple[str, ...] = (),
) -> Converter:
    """Build the function that gives a raw API value the type ``schema`` declares.

    The schema is the single source of truth: what the tap announces is what the
    converter produces, so every record is valid against the announced schema. An
    object keeps only the properties ``selected`` (all, if None) below
    ``breadcrumb``, the value's place in the record.
    """
    types = _types(schema)
    if "object" in types and "properties" in schema:
        return RecordNormalizer(
            schema,
            naive_tz=naive_tz,
            report_unknown=False,
            selected=selected,
            breadcrumb=breadcrumb,
        )
    if "object" in types:
        return _free_object
    if "array" in types:
        return _list_of(converter_for(schema.get("items", {}), naive_tz=naive_tz))
    if "integer" in types:
        return to_int
    if "number" in types:
        return to_number
    if "boolean" in types:
        return to_bool
    if schema.get("format") == "date-time":
        if naive_tz is IST:
            return to_utc_rfc3339
        return lambda value: to_utc_rfc3339(value, naive_tz=naive_tz)
    return to_text


def _is_empty(value: object) -> bool:
    """None, "" and ``[]`` (PHP's empty object) all mean "nothing here"."""
    return value is None or value in ("", [])


def _ready_types(schema: dict[str, t.Any]) -> frozenset[type]:
    """Python types that need no conversion to fit ``schema`` (never times)."""
    types = _types(schema)
    ready: set[type] = {type(None)} if "null" in types else set()
    if "string" in types and "format" not in schema:
        ready.add(str)
    if "integer" in types:
        ready.add(int)
    if "boolean" in types:
        ready.add(bool)
    return frozenset(ready)


def _free_object(value: object) -> dict[str, t.Any] | None:
    """An object of undocumented shape: kept whole; anything else under ``value``.

    A free-form field keeps one JSON type (object) even when the API sends text or a
    list in it, and loses nothing: ``"Interested"`` becomes ``{"value": "Interested"}``.
    """
    if value is None or isinstance(value, dict):
        return value
    if _is_empty(value):
        return None
    return {"value": value}


_EMPTY: tuple[object, ...] = (None, [], {})


def _list_of(item: Converter) -> Converter:
    def convert(value: object) -> list[t.Any] | None:
        if value is None or value == "":
            return None
        if isinstance(value, dict):
            # PHP writes a list with gaps in its keys as an object keyed "0", "2", ...;
            # an empty list as {}; any other object is a single element where a
            # list was expected.
            if all(key.isdigit() for key in value):
                value = [value[key] for key in sorted(value, key=int)]
            else:
                value = [value]
        elif not isinstance(value, list):
            value = [value]
        # An empty element (null, or PHP's [] for an empty object) says nothing.
        items = (item(element) for element in value if element not in _EMPTY)
        return [converted for converted in items if converted is not None]

    return convert


class FilledColumns(t.Protocol):
    """Columns a record gets from elsewhere in its raw object (custom fields)."""

    #: Every column it may fill: the schema's converters leave these alone.
    columns: frozenset[str]

    def fill(self, raw: t.Mapping[str, t.Any], record: dict[str, t.Any]) -> None:
        """Set the columns of ``record`` from ``raw``."""


class RecordNormalizer:
    """Project a raw API object onto a schema's properties, converting each value.

    Fields the schema does not know are left out (and reported once), so that a new
    field in the API never changes a table's shape behind the user's back.

    ``overrides`` replace the converter the schema implies for some fields (an
    endpoint's quirks); ``derived`` fields take their raw value from the whole object
    (a time the API splits into a date and a time) and are then converted per the
    schema like any other. ``custom_columns`` fills its columns from name/value
    pairs (a contact's custom fields, see ``custom_fields``).
    """

    def __init__(  # noqa: PLR0913 (keyword-only options, each optional)
        self,
        schema: dict[str, t.Any],
        *,
        naive_tz: timezone = IST,
        overrides: t.Mapping[str, Converter] | None = None,
        derived: t.Mapping[str, Source] | None = None,
        report_unknown: bool = True,
        selected: Selection | None = None,
        breadcrumb: tuple[str, ...] = (),
        custom_columns: FilledColumns | None = None,
    ) -> None:
        """Prepare a converter per property of ``schema`` that is ``selected``.

        ``breadcrumb`` is where this object lies in the record (``()`` for the
        record itself), so that nested properties are selected as the catalog says.
        """
        self.report_unknown = report_unknown
        self.custom_columns = custom_columns
        filled = custom_columns.columns if custom_columns is not None else frozenset()
        overrides = overrides or {}
        derived = derived or {}
        properties = schema.get("properties", {})

        def crumb(name: str) -> tuple[str, ...]:
            return (*breadcrumb, "properties", name)

        def wanted(name: str) -> bool:
            return selected is None or selected(crumb(name))

        def converter(name: str) -> Converter:
            return overrides.get(name) or converter_for(
                properties[name],
                naive_tz=naive_tz,
                selected=selected,
                breadcrumb=crumb(name),
            )

        self.fields: tuple[tuple[str, frozenset[type], Converter], ...] = tuple(
            (
                name,
                frozenset() if name in overrides else _ready_types(properties[name]),
                converter(name),
            )
            for name in properties
            if name not in derived and name not in filled and wanted(name)
        )
        self.derived: tuple[tuple[str, Source, Converter], ...] = tuple(
            (name, source, converter(name))
            for name, source in derived.items()
            if wanted(name)
        )
        self.known = frozenset(schema.get("properties", {}))
        self.unknown_seen: set[str] = set()
        self._reported: set[str] = set()

    def __call__(self, raw: object) -> dict[str, t.Any] | None:
        """Return the normalized object (None, "" and ``[]`` become None).

        Raises:
            NormalizationError: naming the field whose value does not fit.
        """
        if raw.__class__ is not dict:
            if _is_empty(raw):
                return None
            msg = f"{raw!r} is not an object"
            raise NormalizationError(msg)
        try:
            # A value that already has its final type skips the call (hot path).
            result = {
                name: value
                if (value := raw.get(name)).__class__ in ready
                else convert(value)
                for name, ready, convert in self.fields
            }
            for name, source, convert in self.derived:
                result[name] = convert(source(raw))
            if self.custom_columns is not None:
                self.custom_columns.fill(raw, result)
        except NormalizationError:
            self._raise_for_failing_field(raw)
            raise
        if self.report_unknown and not raw.keys() <= self.known:
            self.unknown_seen.update(raw.keys() - self.known)
        return result

    def _raise_for_failing_field(self, raw: dict[str, t.Any]) -> None:
        checks = [(name, convert, raw.get(name)) for name, _, convert in self.fields]
        checks += [
            (name, convert, source(raw)) for name, source, convert in self.derived
        ]
        for name, convert, value in checks:
            try:
                convert(value)
            except NormalizationError as exc:  # noqa: PERF203 (error path)
                msg = f"field '{name}': {exc}"
                raise NormalizationError(msg) from None

    def newly_unknown(self) -> list[str]:
        """Unknown field names seen since the last call, to report each only once."""
        fresh = sorted(self.unknown_seen - self._reported)
        self._reported.update(fresh)
        return fresh
