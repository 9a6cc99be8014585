"""Tokens: which the server accepts, how it refuses, and ``POST /v1/auth/login``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from fake_smartflo.data import Dataset

#: The long-lived API token the server accepts unless told otherwise.
TOKEN = "fake-api-token-0123456789abcdef"  # noqa: S105 (made up)
LOGIN_PATH = "/v1/auth/login"


@dataclass
class Logins(Dataset):
    """Accepted tokens, panel logins that issue short-lived ones, and refusals."""

    tokens: set[str] = field(default_factory=lambda: {TOKEN})
    #: Panel logins (email -> password) for ``POST /v1/auth/login``.
    logins: dict[str, str] = field(default_factory=dict)
    #: Lifetime of a token from a login, in seconds (``expires_in``).
    token_ttl: float = 3600.0
    #: HTTP status of a refused login (the docs do not say; 200 is the harsh case).
    login_failure_status: int = 200
    #: Status for an expired token (401; some gateways answer 403).
    expired_status: int = 401
    #: A 401 body that echoes the token it refused (some gateways do).
    echo_token_on_refusal: bool = False
    token_expiry: dict[str, float] = field(default_factory=dict, init=False)
    failed_logins: int = field(default=0, init=False)
    issued_tokens: int = field(default=0, init=False)

    def token_status(self, header: str | None) -> str:
        """Whether a (Bearer or bare) token is "ok", "expired" or "invalid"."""
        if not header:
            return "invalid"
        token = header.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            return "invalid"
        expires = self.token_expiry.get(token)
        return "expired" if expires is not None and time.monotonic() > expires else "ok"

    def refusal(
        self, status: str, header: str | None
    ) -> tuple[int, dict[str, object]] | None:
        """The answer to a data request whose token has ``status``; None if "ok"."""
        if status == "ok":
            return None
        if status == "expired":
            return self.expired_status, {
                "success": False,
                "message": "Token has expired",
            }
        message = "Unauthenticated."
        if self.echo_token_on_refusal:
            message = f"Token {str(header).removeprefix('Bearer ')} is not valid."
        return 401, {"success": False, "message": message}

    def login(self, body: bytes) -> tuple[int, dict[str, object]]:
        """``POST /v1/auth/login``: a token for a known email and password."""
        try:
            credentials = json.loads(body or b"{}")
        except ValueError:
            credentials = {}
        email, password = credentials.get("email"), credentials.get("password")
        with self.lock:
            if not email or self.logins.get(email) != password:
                self.failed_logins += 1
                return self.login_failure_status, {
                    "success": False,
                    "message": "The username or password is incorrect.",
                    "login_failed_count": self.failed_logins,
                }
            self.issued_tokens += 1
            token = f"eyJ.login-{self.issued_tokens}.{self.rng.getrandbits(64):x}"
            self.tokens.add(token)
            self.token_expiry[token] = time.monotonic() + self.token_ttl
        return 200, {
            "success": True,
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.token_ttl,
            "number_of_days_left": 30,
        }
