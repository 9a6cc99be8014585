"""Authentication for the Smartflo API: a long-lived API token."""

from __future__ import annotations

import typing as t

import requests

if t.TYPE_CHECKING:
    from collections.abc import Mapping


class SmartfloAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer <api_token>`` to every request.

    One instance per tap, shared by its streams.
    """

    def __init__(self, config: Mapping[str, t.Any]) -> None:
        """Read the token from the tap's settings."""
        self._api_token: str = config["api_token"]

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Authenticate ``request``."""
        request.headers["Authorization"] = f"Bearer {self._api_token}"
        return request

    def __repr__(self) -> str:
        """Never show the token."""
        return f"{type(self).__name__}(api_token=***)"
