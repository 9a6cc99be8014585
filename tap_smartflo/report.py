"""What a run did to be told at its end: the streams the API refused.

A token may lack permission for one endpoint (and a server may lack one), which
should not stop the others. A stream refused from its first request is skipped with
a warning, unless an earlier run extracted it: then the token *lost* access, which
must not hide in a green run, so the run fails once every other stream is done.
When every selected stream is refused, the run fails at once (a wrong api_url).
"""

from __future__ import annotations

import typing as t

from tap_smartflo.errors import EndpointError, SmartfloError

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Collection


class RunReport:
    """The refused streams of one run."""

    def __init__(self, selected: Callable[[], Collection[str]]) -> None:
        """Judge refusals against the streams ``selected()`` names."""
        self._selected = selected
        #: Stream name -> why it was skipped (lost streams included).
        self.skipped: dict[str, str] = {}
        #: Stream name -> the line that fails the run.
        self.lost: dict[str, str] = {}

    def refused(
        self,
        stream: str,
        error: EndpointError,
        *,
        extracted_before: bool,
        logger: logging.Logger,
    ) -> None:
        """Note that ``stream`` was refused from its first request.

        Raises:
            SmartfloError: when every selected stream has now been refused.
        """
        self.skipped[stream] = str(error)
        if set(self._selected()) <= set(self.skipped):
            raise SmartfloError("; ".join(sorted(set(self.skipped.values()))))
        if extracted_before:
            self.lost[stream] = (
                f"Stream '{stream}' was extracted before, but Smartflo now refuses "
                f"it (HTTP {error.status} on {error.path}): the token may have lost "
                f"access to it. If that is intended, deselect it (meltano select "
                f"tap-smartflo --exclude {stream} '*', or \"selected\": false in the "
                "catalog)"
            )
            logger.warning(
                "Stream '%s' was extracted before but is refused now: %s",
                stream,
                error,
            )
            return
        logger.warning(
            "Skipping stream '%s': %s. Deselect it in the catalog if this is expected.",
            stream,
            error,
        )
