"""Discovery that asks the API: which custom-field columns ``contacts`` has.

With an input catalog (``--catalog``, what Meltano passes) the columns are the
catalog's, and the sync asks nothing. Without one (``--discover``, or a sync with
no catalog), the labels come from every page of ``GET /v1/contact/groups``: one
request per 100 groups, through the tap's one transport (its authenticator, pace
and retries), within a budget of its own. Meltano discovers before every run, and
an API that cannot be reached must cost that run seconds, not the sync's
``retry_max_seconds``.

Whenever the columns cannot be had (no credentials yet, as when Meltano discovers
before ``meltano config set``; the setting off; the API refusing an endpoint or
unreachable), the catalog is the static one and one log line says why. Credentials
the API refuses end ``--discover`` as they would end a sync.
"""

from __future__ import annotations

import logging
import time
import typing as t
from functools import cached_property

import requests
from singer_sdk.exceptions import FatalAPIError

from tap_smartflo.custom_fields import (
    column_schemas,
    field_map_labels,
    is_custom_column,
)
from tap_smartflo.errors import CredentialsRefusedError
from tap_smartflo.pagination import PageNumberPaginator, PageSize
from tap_smartflo.report import DISCOVERY
from tap_smartflo.settings import setting_errors

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from singer_sdk.singerlib import Catalog

    from tap_smartflo.transport import Transport

GROUPS_PATH = "/v1/contact/groups"
#: The largest ``limit`` the endpoint is documented to accept.
GROUPS_PAGE_SIZE = 100
#: Discovery retries failing requests for this long at most, all pages together
#: (less if ``retry_max_seconds`` is less), and each try waits this long at most
#: for an answer (less if ``request_timeout`` is less): an unreachable API costs a
#: discovery about 25 s at worst.
DISCOVERY_RETRY_SECONDS = 15.0
DISCOVERY_TIMEOUT_SECONDS = 10.0
#: The stream whose schema gets the columns.
CONTACTS = "contacts"
Columns = dict[str, dict[str, t.Any]]


class ContactColumns:
    """Contacts' custom-field columns, found once (on first use) for the whole run."""

    def __init__(
        self,
        config: Mapping[str, t.Any],
        catalog: Catalog | None,
        transport: Transport,
        logger: logging.Logger,
        *,
        strict: bool,
    ) -> None:
        """Columns from ``catalog``, else discovered through ``transport``.

        ``strict`` (a discovery of its own): credentials the API refuses raise
        rather than cost the columns.
        """
        self.config = config
        self.catalog = catalog
        self.transport = transport
        self.logger = logger
        self.strict = strict

    @cached_property
    def columns(self) -> Columns:
        """Name -> schema of each column."""
        return contact_columns(
            self.config,
            self.catalog,
            self.transport,
            self.logger,
            strict=self.strict,
        )


def contact_columns(
    config: Mapping[str, t.Any],
    catalog: Catalog | None,
    transport: Transport,
    logger: logging.Logger,
    *,
    strict: bool = False,
) -> Columns:
    """The custom-field columns of ``contacts``: the catalog's, or discovered now.

    ``strict``: credentials the API refuses raise rather than cost the columns.
    """
    if not config.get("custom_fields_as_columns", True):
        if catalog is None:
            logger.info(
                "custom_fields_as_columns is false: contacts' custom fields stay "
                "in custom_fields only"
            )
        return {}
    if catalog is not None:
        entry = catalog.get_stream(CONTACTS)
        properties = entry.schema.to_dict().get("properties", {}) if entry else {}
        # The catalog's columns, as text whatever type it gives them: that is what
        # the records hold (a retyped one is named in the log, see tap.py).
        return {
            name: {**schema, "type": ["string", "null"]}
            for name, schema in properties.items()
            if is_custom_column(name)
        }
    return discover_columns(config, transport, logger, strict=strict)


def discover_columns(
    config: Mapping[str, t.Any],
    transport: Transport,
    logger: logging.Logger,
    *,
    strict: bool = False,
) -> Columns:
    """A column per custom label of the account's contact groups, or none and why.

    Raises:
        CredentialsRefusedError: when ``strict`` and the API refuses them.
    """
    missing = "Contacts get no custom-field columns in this catalog"
    if errors := setting_errors(config):
        logger.info("%s: %s", missing, errors[0])
        return {}
    try:
        labels, groups, pages = read_labels(config, transport)
    except (FatalAPIError, requests.exceptions.RequestException) as exc:
        if strict and isinstance(exc, CredentialsRefusedError):
            raise

        reason = (
            str(exc)
            if isinstance(exc, FatalAPIError)
            else f"could not send a request ({type(exc).__name__}): check api_url"
        )
        logger.warning(
            "%s: %s (their values stay in custom_fields; the next discovery "
            "tries again)",
            missing,
            reason,
        )
        return {}
    columns = column_schemas(labels)
    logger.info(
        "Custom fields as columns: %d for contacts, from %d contact groups "
        "(%d %s to %s)",
        len(columns),
        groups,
        pages,
        "request" if pages == 1 else "requests",
        GROUPS_PATH,
    )
    return columns


def read_labels(
    config: Mapping[str, t.Any], transport: Transport
) -> tuple[list[str], int, int]:
    """Every field_map label of every contact group: (labels, groups, requests).

    Raises:
        SmartfloError: when the API refuses, or fails past discovery's budget.
    """
    url = str(config["api_url"]).rstrip("/") + GROUPS_PATH
    budget = min(float(config["retry_max_seconds"]), DISCOVERY_RETRY_SECONDS)
    deadline = time.monotonic() + budget
    paginator = PageNumberPaginator(
        PageSize(GROUPS_PAGE_SIZE, documented=GROUPS_PAGE_SIZE)
    )
    page: int | None = paginator.start
    labels: list[str] = []
    groups = pages = 0
    while page is not None:
        left = max(0.0, deadline - time.monotonic())
        bounded = transport.bounded(
            left,
            min(DISCOVERY_TIMEOUT_SECONDS, max(left, 1.0)),
            # One line says what came of discovery; its retries are DEBUG detail.
            retry_log_level=logging.DEBUG,
            advice="",  # the line that reports the failure says what comes next
            budget_name="discovery's budget",
        )
        prepared = requests.Request(
            "GET",
            url,
            params={"limit": GROUPS_PAGE_SIZE, "page": page},
            headers={"Accept": "application/json"},
        ).prepare()
        body, records = bounded.fetch(
            prepared,
            stream=DISCOVERY,
            path=GROUPS_PATH,
            records_key="results",
            what=f"{GROUPS_PATH} (page {page}, discovery)",
        )
        pages += 1
        groups += len(records)
        for group in records:
            labels += field_map_labels(group)
        page = paginator.next_token(page, body, records)
    return labels, groups, pages
