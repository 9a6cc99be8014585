"""The tap's settings: their schema, and the rules JSON Schema cannot say."""

from __future__ import annotations

import ipaddress
import typing as t
import unicodedata
from urllib.parse import urlparse

from singer_sdk import typing as th

from tap_smartflo.normalize import NormalizationError, parse_time

DEFAULT_API_URL = "https://api-smartflo.tatateleservices.com"
#: The longest from_date/to_date range public integrations use.
MAX_CALL_WINDOW_DAYS = 30
#: Settings whose values never appear in a log line.
SECRET_SETTINGS = ("api_token", "password")

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "api_url",
        th.StringType,
        default=DEFAULT_API_URL,
        title="API URL",
        description=(
            "Base URL of the Smartflo API, https (plain http only for a server "
            "on this machine). Servetel: https://api.servetel.in, "
            "Acefone: https://api.acefone.in."
        ),
    ),
    th.Property(
        "api_token",
        th.StringType,
        secret=True,
        title="API token",
        description=(
            "Long-lived Smartflo API token, sent as 'Authorization: Bearer "
            "<token>'. Set this, or email and password."
        ),
    ),
    th.Property(
        "email",
        th.StringType,
        title="Login email",
        description=(
            "Smartflo panel login id, used with password instead of api_token."
        ),
    ),
    th.Property(
        "password",
        th.StringType,
        secret=True,
        title="Password",
        description=("Smartflo panel password, used with email instead of api_token."),
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        title="Start date",
        description=(
            "Earliest time to extract on the first sync: updated_at for contacts "
            "and contact groups, the call's start for call records (ISO 8601; a "
            "time without an offset is read as UTC). Leave empty for all history "
            "(call records: from 2015-01-01)."
        ),
    ),
    th.Property(
        "page_size",
        th.IntegerType,
        default=1000,
        title="Page size",
        description=(
            "The most records asked for per request (at most 100 where Smartflo "
            "documents that limit: contact groups, broadcasts). The tap learns "
            "from the pages what each endpoint really serves, steps down if a "
            "limit is refused, and remembers it in the state; it loses nothing."
        ),
    ),
    th.Property(
        "request_timeout",
        th.NumberType,
        default=60,
        title="Request timeout",
        description=(
            "Seconds to wait for each part of a response before abandoning and "
            "retrying it; a whole response may take twice this."
        ),
    ),
    th.Property(
        "max_response_megabytes",
        th.IntegerType,
        default=50,
        title="Largest response",
        description=(
            "The largest response body (in MB, after decompression) the tap reads; "
            "a larger one ends the run naming the endpoint. Pages of 1000 records "
            "take a few MB."
        ),
    ),
    th.Property(
        "lookback_minutes",
        th.NumberType,
        default=10,
        title="Lookback minutes",
        description=(
            "Minutes before the previous bookmark that contacts and contact "
            "groups re-read, for changes committed late on the server. Widens "
            "requests, never the stored bookmark."
        ),
    ),
    th.Property(
        "max_concurrent_requests",
        th.IntegerType,
        default=8,
        title="Concurrent requests",
        description=(
            "Pages fetched ahead at once, while earlier pages are written "
            "(records still leave in page order). 1 fetches one page at a time."
        ),
    ),
    th.Property(
        "rate_limit_share",
        th.NumberType,
        default=0.5,
        title="Share of the rate limit",
        description=(
            "The fraction (above 0, at most 1) of the account's rate limit the tap "
            "may use; the rest stays free for the CRM, the dialer and agents' apps. "
            "1 is the tap's fastest, where nothing else uses the account; each "
            "half costs twice the time of a long sync."
        ),
    ),
    th.Property(
        "account_requests_per_second",
        th.IntegerType,
        title="Account's requests per second",
        description=(
            "The account's rate limit (its trunks' calls per second), if you know "
            "it. Empty: the tap learns it in its first run with a few 429s, "
            "remembers it in its STATE, and learns it again after a day."
        ),
    ),
    th.Property(
        "max_requests_per_second",
        th.NumberType,
        title="Most requests per second",
        description=(
            "A ceiling on the tap's own pace, whatever its share allows (the "
            "learning of the limit included). Empty: no ceiling."
        ),
    ),
    th.Property(
        "retry_max_seconds",
        th.NumberType,
        default=300,
        title="Retry budget",
        description=(
            "Seconds the tap keeps retrying one failing request (429, 5xx, "
            "timeouts, resets, broken bodies) before it stops with an error."
        ),
    ),
    th.Property(
        "retry_initial_seconds",
        th.NumberType,
        default=1,
        title="First retry wait",
        description=(
            "Seconds before the first retry; each further wait doubles (with "
            "jitter, at most 60 s). A Retry-After header from the API wins."
        ),
    ),
    th.Property(
        "progress_interval_seconds",
        th.NumberType,
        default=30,
        title="Progress interval",
        description=(
            "Seconds between progress lines in the log (per active stream: records, "
            "requests, 429s, retries; for call records the share of the range done "
            "and the time left). 0 turns them off; the closing summary is always "
            "written."
        ),
    ),
    th.Property(
        "call_records_window_days",
        th.IntegerType,
        default=MAX_CALL_WINDOW_DAYS,
        title="Call records window days",
        description=(
            "Days of calls asked for per request window (from_date/to_date), "
            "1 to 30: public integrations keep to 30, and longer ranges are not "
            "known to work. Each window costs at least one request, even when "
            "empty (12 a year of history at 30)."
        ),
    ),
    th.Property(
        "call_records_lookback_hours",
        th.NumberType,
        default=24,
        title="Call records lookback hours",
        description=(
            "Hours before the previous call-records bookmark that each run "
            "re-reads: a call is recorded when it ends and keyed on when it "
            "started, and fields such as recording_url are filled in later. "
            "Keep it above your longest call."
        ),
    ),
    th.Property(
        "scheduled_callbacks_days_ahead",
        th.IntegerType,
        default=30,
        title="Scheduled callbacks days ahead",
        description=(
            "Days after the run's start that scheduled_callbacks reads callbacks "
            "scheduled ahead; later ones come in later runs. Every run re-reads "
            "them (one request per 30 days) and emits only those that changed."
        ),
    ),
    th.Property(
        "scheduled_callbacks_lookback_days",
        th.NumberType,
        default=7,
        title="Scheduled callbacks lookback days",
        description=(
            "Days before the previous run's start that scheduled_callbacks re-reads, "
            "so that callbacks made (or given up) after their due time arrive with "
            "their new status; a change to a callback due earlier is not seen (see "
            "docs/scheduled-callbacks.md)."
        ),
    ),
    th.Property(
        "emit_activate_version_messages",
        th.BooleanType,
        default=True,
        title="Emit ACTIVATE_VERSION messages",
        description=(
            "After a full-table stream (users, user_details, departments, ivrs, "
            "my_numbers, broadcast_lists, broadcast_leads, broadcasts, "
            "dialer_campaigns, dnd_leads) was read "
            "whole, tell the target that the rows it did not send are gone: an "
            "ACTIVATE_VERSION message after the last record, never before. "
            "target-postgres then sets _sdc_deleted_at on them (or deletes them with "
            "hard_delete). Off: rows removed in Smartflo stay as they were."
        ),
    ),
    th.Property(
        "recordings_archive_url",
        th.StringType,
        title="Recordings archive URL",
        description=(
            "Where the call_recordings stream keeps each answered call's audio, as "
            "an fsspec URL: file:///srv/calls, s3://bucket/prefix (pip install "
            "'tap-smartflo[s3]'), gs://..., az://... Needed when call_recordings "
            "is selected; see docs/recordings.md."
        ),
    ),
    th.Property(
        "recordings_storage_options",
        th.ObjectType(additional_properties=True),
        secret=True,
        title="Recordings storage options",
        description=(
            "Options for the archive's file system, passed to fsspec as they are: "
            'credentials and the endpoint, for example {"key": ..., "secret": '
            '..., "endpoint_url": ...} for S3. Every text value in it is masked '
            "in the log."
        ),
    ),
    th.Property(
        "custom_fields_as_columns",
        th.BooleanType,
        default=True,
        title="Custom fields as columns",
        description=(
            "Give contacts a nullable text column per custom field label of the "
            "account's contact groups (cf_<label>; see docs/custom-fields.md), "
            "found at discovery with one request per 100 contact groups. False: "
            "custom fields stay in custom_fields only."
        ),
    ),
).to_dict()


def secret_values(config: t.Mapping[str, t.Any]) -> list[str]:
    """Every secret value in ``config``.

    The secret settings, and each text inside ``recordings_storage_options``,
    however deep (the whole object is secret).
    """
    found = [str(config.get(name) or "") for name in SECRET_SETTINGS]

    def leaves(value: object) -> None:
        if isinstance(value, dict):
            for item in value.values():
                leaves(item)
        elif isinstance(value, list):
            for item in value:
                leaves(item)
        elif isinstance(value, str):
            found.append(value)

    leaves(config.get("recordings_storage_options"))
    return found


def setting_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """Check what JSON Schema cannot say; each error names the setting to fix."""
    errors = []
    if not config.get("api_token") and not (
        config.get("email") and config.get("password")
    ):
        errors.append(
            "No credentials: set api_token, or both email and password "
            "(TAP_SMARTFLO_API_TOKEN, or TAP_SMARTFLO_EMAIL and TAP_SMARTFLO_PASSWORD)"
        )
    errors += _token_errors(config.get("api_token"))
    errors += _api_url_errors(str(config.get("api_url", "")))
    if start_date := config.get("start_date"):
        try:
            parse_time(start_date)
        except NormalizationError:
            errors.append(
                f"start_date {start_date!r} is not an ISO 8601 date-time "
                "such as 2024-01-01T00:00:00Z"
            )
    for name, minimum in (
        ("page_size", 1),
        ("max_concurrent_requests", 1),
        ("max_requests_per_second", 0.001),
        ("account_requests_per_second", 1),
        ("request_timeout", 0.001),
        ("max_response_megabytes", 1),
        ("retry_max_seconds", 0),
        ("retry_initial_seconds", 0.001),
    ):
        value = config.get(name)
        if isinstance(value, int | float) and value < minimum:
            errors.append(f"{name} must be positive, got {value}")
    for name in (
        "lookback_minutes",
        "call_records_lookback_hours",
        "scheduled_callbacks_days_ahead",
        "scheduled_callbacks_lookback_days",
        "progress_interval_seconds",
    ):
        lookback = config.get(name)
        if isinstance(lookback, int | float) and lookback < 0:
            errors.append(f"{name} must be zero or more, got {lookback}")
    share = config.get("rate_limit_share")
    if isinstance(share, int | float) and not 0 < share <= 1:
        errors.append(
            f"rate_limit_share must be above 0 and at most 1 (a fraction of the "
            f"account's limit), got {share}"
        )
    errors += _archive_errors(config.get("recordings_archive_url"))
    days = config.get("call_records_window_days")
    if isinstance(days, int) and not 1 <= days <= MAX_CALL_WINDOW_DAYS:
        errors.append(
            f"call_records_window_days must be 1 to {MAX_CALL_WINDOW_DAYS}, got {days}"
        )
    return errors


def _archive_errors(url: object) -> list[str]:
    """A URL with a scheme (fsspec reads a bare path as a local one: be explicit)."""
    if url is None or (isinstance(url, str) and "://" in url):
        return []
    message = (
        "recordings_archive_url must be a URL such as file:///srv/calls or "
        f"s3://bucket/prefix, got {url!r}"
    )
    return [message]


def _token_errors(api_token: object) -> list[str]:
    """A token a header can carry: not only spaces, no control character inside.

    Surrounding whitespace (a token pasted from a file ends in a newline) is
    stripped when it is sent; a line break inside would split the header. The
    token is never quoted.
    """
    if not isinstance(api_token, str) or not api_token:
        return []
    token = api_token.strip()
    if not token:
        return ["api_token is only spaces: set the token Smartflo issued"]
    if any(unicodedata.category(c) == "Cc" for c in token):
        message = (
            "api_token has a control character inside (a line break or a tab, say): "
            "set the token as Smartflo issued it, on one line"
        )
        return [message]
    return []


def _api_url_errors(api_url: str) -> list[str]:
    """An http(s) URL, and https unless the server is on this machine.

    A URL with a user name or password in it (``https://user:secret@host``) is
    refused without being quoted: the credentials would travel in every request
    line. Any ``@`` counts, so that no spelling of one slips past the parser.
    """
    if "@" in api_url:
        message = (
            "api_url holds a user name or password (the part before '@'): remove "
            "it (the tap signs in with api_token, or email and password)"
        )
        return [message]
    url = urlparse(api_url)
    if url.scheme not in {"http", "https"} or not url.netloc:
        return [f"api_url {api_url!r} is not an http(s) URL such as {DEFAULT_API_URL}"]
    if url.scheme == "http" and not _is_loopback(url.hostname):
        secure = url._replace(scheme="https").geturl()
        message = (
            f"api_url {api_url!r} would send the credentials unencrypted: use "
            f"https:// ({secure}); plain http is only for a server on this machine "
            "(localhost, 127.0.0.1, ::1)"
        )
        return [message]
    return []


def _is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine: a request to it never crosses a network."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
