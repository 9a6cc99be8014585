"""Contacts' custom fields as columns: the naming rule, the columns, their values.

Every contact group defines its own column labels (its ``field_map``), and each
contact carries its values as ``custom_fields``, a list of ``{"name", "value"}``.
Each distinct custom label becomes a nullable text column of ``contacts``, named by
a rule that looks at the label alone (docs/custom-fields.md):

1. The label is normalised: Unicode NFKC, case-folded, trimmed, runs of whitespace
   made one space. Labels equal after that are one field ("Loan Amount",
   "loan  amount"), and the five standard labels ("Phone Number", "Name",
   "Email Id", "Address", "Company Name") are the standard columns: no new column.
2. The slug is the normalised label transliterated to ASCII (anyascii), lower case,
   every run of anything but ``[a-z0-9]`` made one ``_``, trimmed of ``_``.
3. A label that is plain words (``[a-z0-9]`` words, single spaces) is named
   ``cf_`` + slug. Any other label (punctuation, another script, too long) is named
   ``cf_`` + slug (cut to fit) + ``__`` + the first 8 hex digits of the SHA-256 of
   the normalised label. A plain label's name never holds ``__``, so a plain name
   and a hashed one never meet, and two different labels never share a column.

Names fit PostgreSQL's 63-byte identifiers. Since a name depends on its own label
only, never on which other labels exist or the order they are met in, a column is
never renamed under a target (targets keep old columns for ever), and the sync can
compute any label's column with no mapping stored in the catalog.
"""

from __future__ import annotations

import hashlib
import re
import typing as t
import unicodedata

from anyascii import anyascii

from tap_smartflo.normalize import to_text

if t.TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

PREFIX = "cf_"
#: PostgreSQL truncates identifiers beyond 63 bytes (NAMEDATALEN - 1).
MAX_NAME_BYTES = 63
HASH_DIGITS = 8
#: The slug of a label with no ASCII letter or digit at all ("???").
EMPTY_SLUG = "field"
#: Normalised standard labels: the contacts columns phone_number, name, email_id,
#: address and company_name already hold them.
STANDARD_LABELS = frozenset(
    {"phone number", "name", "email id", "address", "company name"}
)
#: Where a contact's custom fields are, in the API's record and in the schema.
CUSTOM_FIELDS = "custom_fields"

_PLAIN = re.compile(r"[a-z0-9]+(?: [a-z0-9]+)*")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def field_key(label: str) -> str:
    """The label as fields are told apart: NFKC, case-folded, whitespace collapsed."""
    # NFKC again after folding: case folding can leave a string that NFKC would
    # still change, and two spellings of one field must meet in one key.
    folded = unicodedata.normalize(
        "NFKC", unicodedata.normalize("NFKC", label).casefold()
    )
    return " ".join(folded.split())


def column_for(label: str) -> str | None:
    """The column of the custom field ``label``; None for a standard or empty label."""
    key = field_key(label)
    if not key or key in STANDARD_LABELS:
        return None
    slug = _NOT_SLUG.sub("_", anyascii(key).lower()).strip("_")
    plain = PREFIX + slug
    if _PLAIN.fullmatch(key) and len(plain) <= MAX_NAME_BYTES:
        return plain
    digest = hashlib.sha256(key.encode()).hexdigest()[:HASH_DIGITS]
    room = MAX_NAME_BYTES - len(PREFIX) - len("__") - HASH_DIGITS
    slug = slug[:room].rstrip("_") or EMPTY_SLUG
    return f"{PREFIX}{slug}__{digest}"


def _spelling(label: str) -> str:
    """The label as shown in the catalog: NFKC, whitespace collapsed, case kept."""
    return " ".join(unicodedata.normalize("NFKC", label).split())


def column_schemas(labels: Iterable[object]) -> dict[str, dict[str, t.Any]]:
    """The contacts properties for the custom ``labels``, sorted by column name.

    Each is nullable text, titled with the label (the first spelling in sorted
    order when several spellings are one field).
    """
    spellings: dict[str, set[str]] = {}
    for label in labels:
        if isinstance(label, str) and (column := column_for(label)):
            spellings.setdefault(column, set()).add(_spelling(label))
    return {
        column: _column_schema(sorted(spellings[column]))
        for column in sorted(spellings)
    }


def _column_schema(spellings: list[str]) -> dict[str, t.Any]:
    title, *others = spellings
    also = f" (also written {', '.join(repr(o) for o in others)})" if others else ""
    return {
        "type": ["string", "null"],
        "title": title,
        "description": (
            f"Custom field {title!r}{also} of the contact's group, as text; its "
            f"value also stays in {CUSTOM_FIELDS}."
        ),
    }


def is_custom_column(name: str) -> bool:
    """Whether the contacts property ``name`` is a custom-field column."""
    return name.startswith(PREFIX)


def field_map_labels(group: object) -> list[str]:
    """The column labels of a contact group's ``field_map`` (text ones only).

    PHP writes a list with gaps in its keys as an object keyed "0", "2", ...: its
    values are read too.
    """
    field_map = group.get("field_map") if isinstance(group, dict) else None
    if isinstance(field_map, dict):
        field_map = list(field_map.values())
    if not isinstance(field_map, list):
        return []
    return [label for label in field_map if isinstance(label, str)]


class CustomFieldColumns:
    """Fills a contact's custom-field columns from its ``custom_fields`` pairs.

    ``columns`` are the custom columns the stream's schema has; ``filled`` those the
    catalog selects. A value is text (numbers as their digits), null stays null;
    when one record has several spellings of one field, the first value that is not
    null wins. A label whose column the schema lacks (added in Smartflo after the
    catalog was discovered) stays in ``custom_fields`` and is reported once.
    """

    def __init__(self, columns: Collection[str], *, filled: Collection[str]) -> None:
        """Prepare to fill ``filled``, and to tell unknown labels from ``columns``."""
        self.columns = frozenset(columns)
        self.filled = tuple(sorted(set(filled) & self.columns))
        self._column_of: dict[str, str | None] = {}
        #: Label -> the column it would have, for labels the schema lacks.
        self.unknown_seen: dict[str, str] = {}
        self._reported: set[str] = set()

    def fill(self, raw: Mapping[str, t.Any], record: dict[str, t.Any]) -> None:
        """Set each filled column of ``record`` from ``raw``'s custom fields."""
        values: dict[str, str | None] = dict.fromkeys(self.filled)
        pairs = raw.get(CUSTOM_FIELDS)
        if isinstance(pairs, dict):  # PHP's list with gaps in its keys
            pairs = list(pairs.values())
        for pair in pairs if isinstance(pairs, list) else ():
            label = pair.get("name") if isinstance(pair, dict) else None
            if not isinstance(label, str):
                continue
            column = self._column(label)
            if column is None:
                continue
            if column not in self.columns:
                self.unknown_seen.setdefault(label, column)
            elif column in values and values[column] is None:
                values[column] = to_text(pair.get("value"))
        record.update(values)

    def _column(self, label: str) -> str | None:
        try:
            return self._column_of[label]
        except KeyError:
            column = self._column_of[label] = column_for(label)
            return column

    def newly_unknown(self) -> list[str]:
        """Labels without a column seen since the last call, to report each once."""
        fresh = sorted(set(self.unknown_seen) - self._reported)
        self._reported.update(fresh)
        return [f"{label!r} ({self.unknown_seen[label]})" for label in fresh]
