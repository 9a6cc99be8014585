"""The Smartflo streams: one small class per endpoint."""

from __future__ import annotations

from tap_smartflo.client import UpdatedAfterStream


class ContactsStream(UpdatedAfterStream):
    """Contacts of every contact group: ``GET /v1/contacts``."""

    name = "contacts"
    path = "/v1/contacts"
    primary_keys = ("id",)
