"""The naming rule for custom-field columns, without HTTP.

A column name is a function of its own label alone: these names are what lands in
warehouses, so they are pinned here exactly (an upgrade of the transliteration
table that changed one would fail this file).
"""

from __future__ import annotations

import hashlib
import itertools
import re

import pytest

from tap_smartflo.custom_fields import CustomFieldColumns, column_for, column_schemas

#: What a PostgreSQL identifier may hold without quoting or truncation.
WAREHOUSE_SAFE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@pytest.mark.parametrize(
    ("label", "column"),
    [
        # Plain words: the words joined by "_", whatever the case and spacing.
        ("Alternate Phone Number", "cf_alternate_phone_number"),
        ("Loan Amount", "cf_loan_amount"),
        ("loan  amount", "cf_loan_amount"),
        (" LOAN AMOUNT ", "cf_loan_amount"),
        # Full-width forms (NFKC).
        (
            "\uff2c\uff4f\uff41\uff4e \uff21\uff4d\uff4f\uff55\uff4e\uff54",
            "cf_loan_amount",
        ),
        # Anything else keeps a readable slug and adds a hash of the label itself.
        ("Loan-Amount", f"cf_loan_amount__{short_hash('loan-amount')}"),
        ("ऋण राशि", f"cf_rn_rasi__{short_hash('ऋण राशि')}"),
        ("கடன் தொகை", f"cf_ktn_tokai__{short_hash('கடன் தொகை')}"),
        ("Amount (₹)", f"cf_amount_rs__{short_hash('amount (₹)')}"),
        ("???", f"cf_field__{short_hash('???')}"),
    ],
)
def test_a_label_names_its_column_by_the_rule(label, column):
    assert column_for(label) == column


@pytest.mark.parametrize(
    "label",
    ["Phone Number", "Name", "email id", "Email ID", " Address", "COMPANY NAME"],
)
def test_standard_labels_add_no_column(label):
    assert column_for(label) is None
    assert column_schemas([label]) == {}


@pytest.mark.parametrize("label", ["", "   ", "\u00a0"])
def test_an_empty_label_has_no_column(label):
    assert column_for(label) is None


def test_long_labels_fit_postgres_identifiers_and_stay_distinct():
    stem = "Amount sanctioned by the branch manager for the quarter ending "
    march, june = column_for(stem + "March"), column_for(stem + "June")
    assert march != june
    for column in (march, june):
        assert column is not None
        assert len(column.encode()) <= 63
        assert WAREHOUSE_SAFE.match(column), column
        assert column.startswith("cf_amount_sanctioned_by_the_branch")


def test_different_labels_never_share_a_column():
    labels = [
        "Loan Amount", "Loan-Amount", "Loan_Amount", "Loan.Amount", "loan amount 2",
        "Loan Amount ", "ऋण राशि", "ऋण  राशि", "கடன் தொகை", "Montant du prêt",
        "Montant du pret", "贷款金额", "Dai Kuan Jin E", "daikuanjine", "a", "A-",
        "x" * 80, "x" * 81, "field", "Field!",
    ]  # fmt: skip
    by_field: dict[str, set[str]] = {}
    for label in labels:
        column = column_for(label)
        assert column is not None
        assert WAREHOUSE_SAFE.match(column), column
        key = " ".join(label.split()).casefold()
        by_field.setdefault(column, set()).add(key)
    # One column per distinct label; spellings equal ignoring case and spacing share.
    assert all(len(keys) == 1 for keys in by_field.values()), by_field


def test_a_column_name_depends_on_its_label_only():
    # Whatever other labels exist, and in whatever order discovery meets them,
    # each label gets the same column: targets keep old columns for ever.
    labels = ["Loan Amount", "loan  amount", "Loan-Amount", "ऋण राशि", "கடன் தொகை"]
    alone = {label: column_for(label) for label in labels}
    for order in itertools.permutations([*labels, "Loan Amount!", "Loan"]):
        schemas = column_schemas(order)
        for label in labels:
            assert alone[label] in schemas


def test_column_schemas_are_nullable_text_titled_with_the_label():
    schemas = column_schemas(["Loan Amount", "LOAN AMOUNT", "Phone Number", "ऋण राशि"])
    assert list(schemas) == sorted(schemas)
    loan = schemas["cf_loan_amount"]
    assert loan["type"] == ["string", "null"]
    assert loan["title"] == "LOAN AMOUNT"  # the first spelling in sorted order
    assert "Loan Amount" in loan["description"]
    assert schemas[column_for("ऋण राशि")]["title"] == "ऋण राशि"


def test_a_record_fills_its_selected_columns_and_names_unknown_labels_once():
    columns = CustomFieldColumns(
        ["cf_loan_amount", "cf_branch", "cf_alternate_phone_number"],
        filled=["cf_loan_amount", "cf_alternate_phone_number"],  # cf_branch deselected
    )
    raw = {
        "custom_fields": [
            {"name": "loan  amount", "value": None},
            {"name": "Loan Amount", "value": 250000},  # one field: first non-null
            {"name": "LOAN AMOUNT", "value": "ignored"},
            {"name": "Branch", "value": "Pune"},
            {"name": "Email ID", "value": "a@example.com"},  # a standard label
            {"name": "Loan Tenure", "value": 36},  # no column in the schema
            "not a pair",
            {"name": None, "value": 1},
        ]
    }
    record: dict[str, object] = {}
    columns.fill(raw, record)
    assert record == {"cf_loan_amount": "250000", "cf_alternate_phone_number": None}
    columns.fill({"custom_fields": {"0": {"name": "Loan Tenure", "value": 1}}}, {})
    assert columns.newly_unknown() == ["'Loan Tenure' (cf_loan_tenure)"]
    assert columns.newly_unknown() == []
