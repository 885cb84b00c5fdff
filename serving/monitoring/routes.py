"""HTTP for monitoring: the prediction log, its summaries and ground-truth feedback.

``GET /predictions``, ``GET /monitoring/summary``, ``GET /monitoring/versions`` and ``POST
/feedback``. The handlers translate HTTP into calls on ``Monitor`` and run them in a worker
thread (they use the database). Errors are ``ServingError``s, mapped to the one JSON error
shape by ``serving.http.exceptions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, Final

import anyio.to_thread
import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter

from drugclf.contract import DrugClass
from serving.http.auth import ForbiddenError, UnauthorizedError, readers_only
from serving.http.errors import (
    BatchSizeError,
    BodyTooLargeError,
    InvalidInputError,
    InvalidParameterError,
    MalformedBodyError,
    UnsupportedMediaTypeError,
    VersionNotFoundError,
)
from serving.http.openapi import READ_SECURITY, error_responses
from serving.http.state import service
from serving.http.validation import Rule, invalid_parameter
from serving.inference.codec import check_json_content_type
from serving.monitoring.feedback import (
    MAX_ITEMS,
    FeedbackItem,
    FeedbackReply,
    LabelConflictError,
    PredictionNotFoundError,
    decode_feedback,
)
from serving.monitoring.monitor import (
    Monitor,
    MonitoringSummary,
    PredictionLogOffError,
    PredictionLogUnavailableError,
    PredictionPage,
)
from serving.monitoring.predlog.backends import Filters
from serving.monitoring.versions import VersionsReport

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


FeedbackDocument = Annotated[
    list[FeedbackItem],
    Body(
        title="Ground-truth labels",
        description=f"1 to {MAX_ITEMS} labels, each naming an answered patient.",
        media_type=RequestEncodingType.JSON,
        min_items=1,
        max_items=MAX_ITEMS,
    ),
]


def document_feedback(data: FeedbackDocument) -> None:  # pragma: no cover - never called
    """Only for the OpenAPI schema: the handler decodes the raw body strictly itself."""


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

    @get(
        "/monitoring/versions",
        sync_to_thread=True,
        responses=error_responses(
            InvalidParameterError, PredictionLogOffError, PredictionLogUnavailableError
        ),
    )
    def versions(
        self,
        state: State,
        since: Since = None,
        until: Until = None,
        bucket_seconds: Annotated[
            float,
            Parameter(
                ge=60,
                le=7 * 86_400,
                description="The width of one accuracy-over-time bucket, in seconds.",
            ),
        ] = 3600.0,
        min_labels: Annotated[
            int,
            Parameter(
                ge=1,
                le=100_000,
                description="Labelled rows a version needs before its accuracy is judged.",
            ),
        ] = 30,
    ) -> VersionsReport:
        """Each model version and role side by side: accuracy on ground truth, and agreement.

        Per version and role (primary, candidate, shadow) in the window (default: the last 24
        hours): predictions, rows labelled with `POST /feedback`, accuracy and macro-F1 on them,
        the confusion matrix, accuracy per time bucket, agreement with the primary on the same
        patients, and latency percentiles. Below `min_labels` labelled rows, accuracy is null
        and `note` says "not enough labels".
        """
        start, end = _window(since, until)
        return service(state, Monitor).versions(start, end, bucket_seconds, min_labels)

    @post(
        "/feedback",
        status_code=200,
        dependencies={"_body_schema": Provide(document_feedback, sync_to_thread=False)},
        responses=error_responses(
            MalformedBodyError,
            PredictionNotFoundError,
            LabelConflictError,
            BodyTooLargeError,
            UnsupportedMediaTypeError,
            InvalidInputError,
            BatchSizeError,
            PredictionLogOffError,
            PredictionLogUnavailableError,
        ),
    )
    async def feedback(self, request: Request[Any, Any, Any]) -> FeedbackReply:
        """Record the true class of answered patients (ground truth for accuracy per version).

        Each item names a request by its `x-request-id`, the patient's `index` in its batch
        (default 0) and the true `label`, spelled as the classes are (letter case is
        normalised). 1 to 1,000 items, all or nothing: 404 names an unknown request or index,
        409 a patient labelled differently before; the same label again is accepted.
        """
        check_json_content_type(request.scope["headers"])
        items = decode_feedback(await request.body())
        monitor = service(request.app.state, Monitor)
        return await anyio.to_thread.run_sync(partial(monitor.add_feedback, items))
