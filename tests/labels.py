"""The custom labels of ``fake_smartflo.MIXED_LABELS`` and the columns they become."""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from fake_smartflo import Contact

#: Each custom label of fake_smartflo.MIXED_LABELS and its column (None: a standard
#: label, which adds none).
LABEL_COLUMNS = {
    "Alternate Phone Number": "cf_alternate_phone_number",
    "Loan Amount": "cf_loan_amount",
    "loan  amount": "cf_loan_amount",
    "LOAN AMOUNT": "cf_loan_amount",
    "Loan-Amount": "cf_loan_amount__da3b5ec1",
    "ऋण राशि": "cf_rn_rasi__d2a76d8c",
    "கடன் தொகை": "cf_ktn_tokai__1045767a",
    "Branch": "cf_branch",
    "Email ID": None,
}
MIXED_COLUMNS = sorted({column for column in LABEL_COLUMNS.values() if column})


def as_text(value: object) -> str | None:
    """A custom field's value as the tap emits it: text, or null."""
    return None if value is None else str(value)


def expected_columns(contact: Contact) -> dict[str, str | None]:
    """The custom columns of a MIXED_LABELS ``contact``'s record."""
    columns: dict[str, str | None] = dict.fromkeys(MIXED_COLUMNS)
    for pair in contact.custom_fields:
        if column := LABEL_COLUMNS[str(pair["name"])]:
            columns[column] = as_text(pair["value"])
    return columns
