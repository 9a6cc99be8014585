"""TapSmartflo: the stream list, the services its streams share, the CLI's exits."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import typing as t
from functools import cached_property

import requests
from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError
from singer_sdk.singerlib import Catalog, Schema
from singer_sdk.tap_base import CliTestOptionValue
from typing_extensions import override

from tap_smartflo import redact
from tap_smartflo.auth import LoginAuth, SmartfloAuth, TokenAuth
from tap_smartflo.bodies import MEGABYTE
from tap_smartflo.client import Services
from tap_smartflo.discovery import ContactColumns
from tap_smartflo.errors import (
    CredentialsRefusedError,
    EndpointError,
    RunFailedError,
    SmartfloError,
)
from tap_smartflo.memory import AccountMemory, saved_account
from tap_smartflo.normalize import NormalizationError
from tap_smartflo.output import Output
from tap_smartflo.pacing import Pacer
from tap_smartflo.recordings import archive_setting_error
from tap_smartflo.report import FULL_TABLE, RunReport
from tap_smartflo.retry import RetryPolicy
from tap_smartflo.settings import CONFIG_SCHEMA, secret_values, setting_errors
from tap_smartflo.state import checked_state, state_object
from tap_smartflo.streams import (
    BroadcastLeadsStream,
    BroadcastListsStream,
    BroadcastsStream,
    CallRecordingsStream,
    CallRecordsStream,
    ContactGroupsStream,
    ContactsStream,
    DepartmentsStream,
    DialerCampaignsStream,
    DndLeadsStream,
    DndListsStream,
    IvrsStream,
    MyNumbersStream,
    ScheduledCallbacksStream,
    UserDetailsStream,
    UsersStream,
)
from tap_smartflo.transport import Transport, make_session
from tap_smartflo.writer import SmartfloWriter

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from types import FrameType

    import click
    from singer_sdk.streams import Stream

    from tap_smartflo.client import SmartfloStream

#: Every stream the tap has, in the order it syncs and lists them. Contacts come
#: first: a check that stops at the first record (meltano config test) costs one
#: request. Call records come last: a first sync walks years of windows, and
#: everything cheap (a request or a few each) is loaded before that walk starts, so
#: a run stopped or failing during it has loaded the rest. Broadcast leads are
#: synced by their parent, broadcast lists, list by list; user details by users.
STREAM_TYPES: tuple[type[SmartfloStream], ...] = (
    ContactsStream,
    ContactGroupsStream,
    UsersStream,
    UserDetailsStream,
    DepartmentsStream,
    IvrsStream,
    MyNumbersStream,
    BroadcastListsStream,
    BroadcastLeadsStream,
    BroadcastsStream,
    DialerCampaignsStream,
    DndListsStream,
    DndLeadsStream,
    ScheduledCallbacksStream,
    CallRecordsStream,
    CallRecordingsStream,
)

#: ``--test`` retries a failing request for this long at most (less if
#: ``retry_max_seconds`` is less), and waits this long at most for each answer.
CONNECTION_TEST_SECONDS = 15.0

STREAM_ORDER = {str(vars(cls)["name"]): n for n, cls in enumerate(STREAM_TYPES)}


class TapSmartflo(Tap):
    """Singer tap for Tata Smartflo (and its twins Servetel and Acefone)."""

    name = "tap-smartflo"
    message_writer_class = SmartfloWriter
    config_jsonschema = CONFIG_SCHEMA

    @override
    def __init__(self, *, setup_mapper: bool = True, **kwargs: t.Any) -> None:
        # The SDK builds the catalog (discovery, which sends requests) before it
        # loads the state. The tap first loads the state, so that discovery's
        # requests already keep the pace the account memory remembers, and puts in
        # its own stop handlers (see ``stop``), so that a signal during discovery
        # is not handled as the SDK would.
        super().__init__(setup_mapper=False, **kwargs)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.stop)
            signal.signal(signal.SIGTERM, self.stop)
        if setup_mapper:
            self.setup_mapper()
        if self.input_catalog is not None:
            known = set(STREAM_ORDER)
            unknown = sorted(set(self.input_catalog) - known)
            if unknown:
                msg = (
                    f"The catalog names stream(s) {', '.join(unknown)}, which "
                    f"tap-smartflo does not have (it has: {', '.join(sorted(known))})"
                )
                raise SmartfloError(msg)
            recordings = self.streams[CallRecordingsStream.name]
            if error := archive_setting_error(
                self.config, selected=recordings.selected
            ):
                raise SmartfloError(error)
            if retyped := _retyped_properties(self.input_catalog, self.streams):
                self.logger.warning(
                    "The catalog retypes %s: the tap emits and announces the types of "
                    "its own schema (what the API sends); convert the values in a "
                    "stream map or in the warehouse",
                    ", ".join(retyped),
                )

    @property
    @override
    def streams(self) -> dict[str, Stream]:
        # Public SDK API. The SDK orders streams by name; the tap syncs (and lists)
        # them in its own order (see STREAM_TYPES).
        streams = super().streams
        return {name: streams[name] for name in sorted(streams, key=_stream_order)}

    #: Whether the sync has begun: the state is loaded (``invoke`` sets it).
    syncing = False
    #: Whether this is ``--discover`` (``run_discovery`` sets it).
    discovering = False

    @override
    def run_discovery(self) -> str:
        # Public SDK API (--discover calls it). Credentials the API refuses end a
        # discovery as they end a sync, in the same line: a catalog printed without
        # its columns would hide the cause. A sync's own discovery (no catalog
        # given) leaves the refusal to the sync, whose first request meets it.
        self.discovering = True
        try:
            return super().run_discovery()
        except CredentialsRefusedError as exc:
            _fail(str(exc))
        finally:
            self.redactor.remove()

    @override
    def load_state(self, state: dict[str, t.Any]) -> None:
        # Public SDK API, meant for overriding: the SDK keeps only the bookmarks,
        # and the tap's memory of the account (memory.py) travels beside them.
        # Both are input: a value of the wrong shape is dropped with a warning.
        super().load_state(checked_state(state, self.logger.warning))
        self.memory.load(saved_account(state), self.logger.warning)

    @cached_property
    def memory(self) -> AccountMemory:
        """What the tap remembers of the account, mirrored into its STATE."""
        return AccountMemory(t.cast("dict[str, t.Any]", self.state))

    def stop(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        """Stop on SIGTERM or Ctrl-C: STATE once syncing, then exit 128 + signum.

        The SDK's own handler writes the STATE and exits 0. Before the sync began
        (during discovery, say) that STATE is empty, and a scheduler would save it
        over the real one; and a run that was stopped did not succeed, so it ends
        with the code a shell reports for the signal. tests/test_cli.py stops runs.
        """
        if self.syncing:
            self.logger.info("Stopped by signal %d: writing the STATE", signum)
            self.state_writer.write_state(self.state)
        else:
            self.logger.info(
                "Stopped before the sync began: no STATE written, the saved state "
                "stays as it was"
            )
        sys.exit(128 + signum)

    @cached_property
    @override
    def catalog(self) -> Catalog:
        # Public SDK API: the working catalog, from which the SDK builds the stream
        # maps and so the SCHEMA messages. The input catalog's selection and
        # metadata, with each stream's schema the tap's own: the records are typed
        # by it (see SmartfloStream.effective_schema), so it is what is announced.
        catalog = super().catalog
        if self.input_catalog is None:
            return catalog
        own = Catalog.from_dict(catalog.to_dict())
        for name, stream in self.streams.items():
            if entry := own.get_stream(name):
                entry.schema = Schema.from_dict(stream.schema)
        return own

    @override
    def discover_streams(self) -> list[SmartfloStream]:
        return [
            stream_type(self, services=self.services) for stream_type in STREAM_TYPES
        ]

    @cached_property
    def services(self) -> Services:
        """One of each for all streams: one account, one rate limit, one report."""
        config = self.config
        ceiling = config.get("max_requests_per_second")
        told = config.get("account_requests_per_second")
        # Every request waits on this one pacer: the transport's (pages and their
        # retries) and the login's.
        pacer = Pacer(
            share=float(config["rate_limit_share"]),
            ceiling=float(ceiling) if ceiling else None,
            told=float(told) if told else None,
            memory=self.memory,
        )
        retry = RetryPolicy(
            initial_wait=float(config["retry_initial_seconds"]),
            budget=float(config["retry_max_seconds"]),
            logger=self.logger,
            pacer=pacer,
        )
        report = RunReport(
            self,
            logger=self.logger,
            progress_interval=float(config["progress_interval_seconds"]),
        )
        session = make_session(
            str(config["api_url"]), int(config["max_concurrent_requests"])
        )
        auth: SmartfloAuth = (
            TokenAuth(config["api_token"])
            if config.get("api_token")
            # A session of its own: the SDK sets the streams' session's auth to
            # this authenticator, which must not sign its own login request.
            else LoginAuth(
                config,
                retry,
                make_session(str(config["api_url"]), 1),
                pacer=pacer,
                report=report,
                redactor=self.redactor,
            )
        )
        transport = Transport(
            session=session,
            auth=auth,
            retry=retry,
            pacer=pacer,
            timeout=float(config["request_timeout"]),
            logger=self.logger,
            report=report,
            max_bytes=int(config["max_response_megabytes"]) * MEGABYTE,
        )
        return Services(
            transport=transport,
            report=report,
            output=Output(self.message_writer, self.state_writer, self.state),
            table_version=self.initialized_at,
            memory=self.memory,
            # Built with the streams: for --discover, once ``discovering`` is set.
            contact_columns=ContactColumns(
                config,
                self.input_catalog,
                transport,
                self.logger,
                strict=self.discovering,
            ),
        )

    @property
    def selected_streams(self) -> list[str]:
        """The streams this run extracts (for the report)."""
        return [name for name, stream in self.streams.items() if stream.selected]

    @cached_property
    def redactor(self) -> redact.Redactor:
        """This run's secrets, masked in every log line while the run lasts."""
        return redact.Redactor()

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # One of the two SDK internals the tap overrides: 0.54 has no public hook
        # for rules JSON Schema cannot say, nor one before the SDK's validator
        # quotes offending values. tests/test_settings.py fails if it is not called.
        # From here on no log line shows a secret, until the run removes the
        # redactor (``invoke``, ``cb_test``, ``run_discovery``).
        self.redactor.install()
        for secret in secret_values(self.config):
            self.redactor.hide(secret)
            self.redactor.hide(secret.strip())  # as the API token is sent
        errors = [
            self.redactor.mask(error)
            for error in super()._validate_config(raise_errors=False)
        ]
        errors += setting_errors(self.config)
        if errors and raise_errors:
            msg = "Config validation failed"
            raise ConfigValidationError(
                msg, errors=errors, schema=self.config_jsonschema
            )
        return errors

    @classmethod
    @override
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """``--test``: check the credentials and api_url with one request.

        The SDK's test syncs one record of every stream (a hundred requests for call
        records' windows, and an ERROR line per stream when it stops them); this one
        asks the first stream for one record, and the next only if one is refused,
        then ends with one line. ``--test=schema`` is the SDK's.
        """
        if value != CliTestOptionValue.All.value:
            super().cb_test(ctx, param, value)
            return
        config = ctx.params.get("config")
        tap = None
        try:
            with _one_line_failures():
                tap = cls(
                    config=config.config if config is not None else {},
                    parse_env_config=config is not None and config.parse_env,
                    validate_config=True,
                    # No catalog, so no discovery either: one request, not two.
                    setup_mapper=False,
                )
                passed = tap.check_connection()
                cls.logger.info("Connection test passed: %s", passed)
        except ConfigValidationError as exc:
            _fail(*exc.errors)
        finally:
            if tap is not None:
                tap.redactor.remove()
        ctx.exit(0)

    def check_connection(self) -> str:
        """One request per stream in turn until one answers: what a run would meet.

        Returns:
            What answered, for the success line.

        Raises:
            SmartfloError: when every stream's endpoint is refused, as a run would.
        """
        # A test answers in seconds, whatever a long run's retry_max_seconds.
        bounded = self.services.transport.bounded(
            CONNECTION_TEST_SECONDS,
            CONNECTION_TEST_SECONDS,
            advice="check api_url and this machine's network, or try again later",
            budget_name="the connection test",
        )
        refused = []
        for stream in t.cast("list[SmartfloStream]", list(self.streams.values())):
            if stream.parent_stream_type is not None:
                continue  # its path needs a parent record (a list's id)
            try:
                stream.check_access(bounded)
            except EndpointError as exc:
                refused.append(str(exc))
                continue
            credential = self.services.transport.auth.credential
            return (
                f"{self.config['api_url']} accepted the {credential} "
                f"({stream.path} answered)"
            )
        raise SmartfloError("; ".join(refused))

    @classmethod
    @override
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: t.Any = None,  # the SDK's _ConfigInput: .config and .parse_env
        state: t.IO[str] | None = None,
        catalog: t.IO[str] | None = None,
    ) -> None:
        """Run the tap; a permanent failure ends it with one line and exit code 1.

        What the SDK's ``Tap.invoke`` does (--about, the version line, build the
        tap, ``sync_all``), through public methods, keeping the tap: the SDK has no
        hook after ``sync_all`` (it is final), where the run's summary is written
        and streams refused now but extracted before fail the run.
        """
        if about:
            cls.print_about(about_format)
            sys.exit(0)
        cls.print_version(print_fn=cls.logger.info)
        saved = _checked_json(state, "--state")
        if saved is not None:  # the SDK takes anything but an object for a path
            saved = state_object(saved, cls.logger.warning)
        tap = None
        try:
            with _one_line_failures():
                tap = cls(
                    config=config.config if config is not None else {},
                    state=saved,
                    catalog=_checked_json(catalog, "--catalog"),
                    parse_env_config=config is not None and config.parse_env,
                    validate_config=True,
                )
                tap.run()
        finally:
            if tap is not None:
                tap.redactor.remove()  # the run is over: its secrets go with it

    def run(self) -> None:
        """Sync every selected stream, then end with the run's summary.

        Raises:
            RunFailedError: when streams that used to be extracted are refused now
                (once every other stream was extracted and its STATE emitted).
        """
        self.syncing = True
        try:
            self.sync_all()
        except SystemExit:
            # A stop signal (see ``stop``): STATE written, exit 128 + n.
            self.log_summary("stopped")
            raise
        except BaseException:
            self.log_summary("failed")  # the caller says why
            raise
        # What the run learned of the account goes out even when its last stream
        # read nothing new.
        self.memory.flush()
        self.state_writer.write_state(self.state)
        if failures := self.services.report.failures():
            self.log_summary("failed")
            raise RunFailedError(failures)
        self.log_summary("succeeded")

    def summary(self, outcome: str) -> list[str]:
        """The run's closing lines: one per selected stream, then one for the run."""
        bookmarks = {}
        for name, stream in self.streams.items():
            state = self.state.get("bookmarks", {}).get(name, {})
            if (value := state.get("replication_key_value")) is not None:
                bookmarks[name] = f"bookmark {value}"
            elif stream.replication_method == "FULL_TABLE":
                bookmarks[name] = FULL_TABLE
        lines = self.services.report.summary(bookmarks, outcome)
        pace = self.services.transport.pacer.summary()
        return [*lines[:-1], f"Pace: {pace}", lines[-1]]

    def log_summary(self, outcome: str) -> None:
        """Log the run's closing lines."""
        for line in self.summary(outcome):
            self.logger.info("Summary: %s", line)


@contextlib.contextmanager
def _one_line_failures() -> Iterator[None]:
    """End the command on a failure the user can act on: its line(s), exit code 1."""
    try:
        yield
    except RunFailedError as exc:
        _fail(*exc.lines)
    except (FatalAPIError, NormalizationError) as exc:
        _fail(str(exc))
    except requests.exceptions.RequestException as exc:
        _fail(_unreachable(exc))


def _fail(*lines: str) -> t.NoReturn:
    """End the run: each line as an error, then exit code 1."""
    for line in lines:
        TapSmartflo.logger.error(line)
    sys.exit(1)


def _retyped_properties(catalog: Catalog, streams: Mapping[str, Stream]) -> list[str]:
    """``stream.property (type)`` for each property the catalog gives another type."""

    def types(schema: Mapping[str, t.Any]) -> set[str]:
        declared = schema.get("type", [])
        found = {declared} if isinstance(declared, str) else set(declared)
        for option in schema.get("anyOf", []):
            found |= types(option)
        return found

    retyped = []
    for name, stream in streams.items():
        entry = catalog.get_stream(name)
        properties = entry.schema.to_dict().get("properties", {}) if entry else {}
        own = stream.schema["properties"]
        for prop, schema in properties.items():
            if prop in own and types(schema) - {"null"} != types(own[prop]) - {"null"}:
                said = "/".join(sorted(types(schema) - {"null"})) or "no type"
                retyped.append(f"{name}.{prop} ({said})")
    return retyped


def _unreachable(exc: requests.exceptions.RequestException) -> str:
    return (
        f"Could not send a request to the Smartflo API ({type(exc).__name__}): "
        "check api_url"
    )


def _checked_json(file: t.IO[str] | None, option: str) -> t.Any:  # noqa: ANN401 (any JSON)
    if file is None:
        return None
    try:
        return json.loads(file.read())
    except ValueError as exc:
        _fail(f"The {option} file {file.name} is not valid JSON ({exc})")


def _stream_order(name: str) -> tuple[int, str]:
    return (STREAM_ORDER.get(name, 99), name)


if __name__ == "__main__":
    TapSmartflo.cli()
