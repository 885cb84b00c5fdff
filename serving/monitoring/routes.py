"""HTTP for monitoring: ``GET /predictions`` and ``GET /monitoring/summary`` (thin handlers).

The handlers translate query parameters into calls on ``Monitor`` and run them in a worker
thread (they read the database). Errors are ``ServingError``s, mapped to the
one JSON error shape by ``serving.http.exceptions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.params import Parameter

from drugclf.contract import DrugClass
from serving.http.auth import ForbiddenError, UnauthorizedError, readers_only
from serving.http.errors import InvalidParameterError, VersionNotFoundError
from serving.http.openapi import READ_SECURITY, error_responses
from serving.http.state import service
from serving.http.validation import Rule, invalid_parameter
from serving.monitoring.monitor import (
    Monitor,
    MonitoringSummary,
    PredictionLogOffError,
    PredictionLogUnavailableError,
    PredictionPage,
)
from serving.monitoring.predlog.backends import Filters

MAX_PAGE = 1000

_TIME_DESCRIPTION: Final = (
    "an RFC 3339 date and time, such as 2026-01-31T09:30:00Z (no offset means UTC)"
)
Since = Annotated[
    str | None,
    Parameter(
        description=f"Only records at or after this time: {_TIME_DESCRIPTION}.",
        required=False,
        schema_extra={"format": "date-time"},
    ),
]
Until = Annotated[
    str | None,
    Parameter(
        description=f"Only records before this time: {_TIME_DESCRIPTION}.",
        required=False,
        schema_extra={"format": "date-time"},
    ),
]
Version = Annotated[
    str | None,
    Parameter(description="Only this model version.", required=False, max_length=128),
]
_TIME: Final = Rule(name="time", kind="datetime")


def _epoch(name: str, text: str | None) -> float | None:
    """A time parameter, read strictly (Litestar's conversion would take "0.5" as seconds)."""
    if text is None:
        return None
    try:
        value = msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        raise invalid_parameter(name, text, _TIME) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _window(since: str | None, until: str | None) -> tuple[float | None, float | None]:
    start, end = _epoch("since", since), _epoch("until", until)
    if start is not None and end is not None and start >= end:
        raise InvalidParameterError(
            f"since must be before until (got since {since}, until {until})",
            field="since",
            expected="a time before until",
        )
    return start, end


class MonitoringController(Controller):
    """Recent predictions and their summary, read from the prediction log's database."""

    path = "/"
    tags = ["monitoring"]  # noqa: RUF012 - Litestar reads a list

    @get(
        "/predictions",
        sync_to_thread=True,
        guards=[readers_only],
        security=[{READ_SECURITY: []}],
        responses=error_responses(
            InvalidParameterError,
            UnauthorizedError,
            ForbiddenError,
            PredictionLogOffError,
            PredictionLogUnavailableError,
        ),
    )
    def list_predictions(  # noqa: PLR0917 - each parameter is a query parameter
        self,
        state: State,
        since: Since = None,
        until: Until = None,
        model_version: Version = None,
        prediction: Annotated[
            DrugClass | None, Parameter(description="Only this predicted class.", required=False)
        ] = None,
        limit: Annotated[
            int, Parameter(ge=1, le=MAX_PAGE, description="Records per page (newest first).")
        ] = 100,
        before_id: Annotated[
            int | None,
            Parameter(
                ge=1,
                description="The previous page's next_cursor: records older than it.",
                required=False,
            ),
        ] = None,
    ) -> PredictionPage:
        """Recent predictions, one record per patient (a batch gives one per row), newest first.

        Inputs and probabilities are patient data: reading them takes the read token or the
        admin token (or a loopback client in development mode). They are null when input
        recording is off.
        """
        start, end = _window(since, until)
        filters = Filters(since=start, until=end, model_version=model_version, predicted=prediction)
        return service(state, Monitor).predictions(filters, limit, before_id)

    @get(
        "/monitoring/summary",
        sync_to_thread=True,
        responses=error_responses(
            InvalidParameterError,
            PredictionLogOffError,
            VersionNotFoundError,
            PredictionLogUnavailableError,
        ),
    )
    def summary(
        self,
        state: State,
        since: Since = None,
        until: Until = None,
        model_version: Version = None,
    ) -> MonitoringSummary:
        """Predictions per hour, class mix per model version, latency percentiles and drift.

        The window defaults to the last 24 hours. Drift compares the live inputs of
        ``model_version`` (default: the served model) with the training distribution in that
        version's metadata: PSI per feature, flagged above 0.2 once 50 rows exist.
        """
        start, end = _window(since, until)
        return service(state, Monitor).summary(start, end, model_version)
