"""A stream read one request per parent record, for an object the API may not have.

``GET /v1/user/{id}`` answers ``{"data": {...}}`` for each user the users stream
lists, and an error (a 4xx with a message, or an error object) for an id it does not
know: a user deleted between the two reads, say. Such an id is skipped with one
warning that names it and what the API said; the run goes on, and succeeds. The
stream is still read whole: ACTIVATE_VERSION then tells the target that the details
of a user the API no longer answers for are gone.

Refusals of the endpoint itself keep their usual meaning (see ``client``): a 401
ends the run, a 403 skips the stream (or, after some ids were read, fails the run at
its end); 429, 5xx and broken connections are retried.
"""

from __future__ import annotations

import typing as t
from http import HTTPStatus

from typing_extensions import override

from tap_smartflo.errors import EndpointError, ErrorBodyError, RequestRefusedError
from tap_smartflo.pages import Unpaged
from tap_smartflo.transport import OneRecord
from tap_smartflo.versions import FullTableStream

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context


class DetailsStream(FullTableStream):
    """One object per parent record, under ``data``; ids the API does not know skipped.

    The object carries its ``id``, as the list it details does.
    """

    records_key: str | None = OneRecord("data")
    #: One object per request (a 422 is about the id).
    paging = Unpaged()
    #: One state for the stream, not one per parent record.
    state_partitioning_keys: t.ClassVar[list[str]] = []
    #: The context key that holds the id the path asks for.
    id_key: t.ClassVar[str] = "id"

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        try:
            yield from super().request_records(context)
        except ErrorBodyError as exc:
            self._skip(context, str(exc))
        except RequestRefusedError as exc:
            self._skip(context, f"HTTP {exc.status}{exc.said}")
        except EndpointError as exc:
            # 404 on a path the API has (it answers unknown paths 403): no such id.
            if exc.status != HTTPStatus.NOT_FOUND:
                raise
            self._skip(context, f"HTTP {exc.status}{exc.said}")

    def _skip(self, context: Context | None, answer: str) -> None:
        asked = (context or {}).get(self.id_key)
        self.logger.warning(
            "%s: skipped %s %s, which %s answered with an error (%s); the run goes on",
            self.name,
            self.id_key,
            asked,
            self.path_for(context),
            answer,
        )
