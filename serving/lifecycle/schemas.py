"""Request and answer bodies of the model lifecycle routes (retrain, jobs, versions).

The shapes are documented in ``docs/retrain.md`` and in the OpenAPI schema. A 200 retrain
answer keeps the original project's ``status`` and ``accuracy`` fields, so its clients keep
working.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from drugclf.artifact import (
    BinningStrategy,
    MaxLeafNodes,
    Metrics,
    NEstimators,
    Params,
    ParitySummary,
    Seed,
    TestSize,
)
from drugclf.routing import RoutingPolicy

DEFAULTS: Final = Params()

JobState = Literal["running", "succeeded", "failed"]


class RetrainRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /retrain`` parameters; every field is optional with the training defaults."""

    n_estimators: NEstimators = DEFAULTS.n_estimators
    max_leaf_nodes: MaxLeafNodes = DEFAULTS.max_leaf_nodes
    test_size: TestSize = DEFAULTS.test_size
    apply_smote: bool = DEFAULTS.smote
    binning: BinningStrategy = DEFAULTS.binning
    random_state: Seed = DEFAULTS.random_state
    force: bool = False
    """Promote even when CV accuracy is worse than the current model's (parity still applies)."""
    wait: bool = True
    """Answer when the job ends (200); false answers 202 with the job URL at once."""

    def params(self) -> Params:
        """The training parameters of this request."""
        return Params(
            n_estimators=self.n_estimators,
            max_leaf_nodes=self.max_leaf_nodes,
            binning=self.binning,
            smote=self.apply_smote,
            test_size=self.test_size,
            random_state=self.random_state,
        )


class ParityReply(msgspec.Struct, frozen=True):
    """The parity gate's outcome for a new version."""

    passed: bool
    cases: int
    mismatches: int
    max_abs_prob_diff: float
    tolerance: float

    @classmethod
    def of(cls, summary: ParitySummary) -> ParityReply:
        """From the artifact's parity summary."""
        return cls(
            passed=summary.passed,
            cases=summary.cases,
            mismatches=summary.mismatches,
            max_abs_prob_diff=summary.max_abs_prob_diff,
            tolerance=summary.tolerance,
        )


class RetrainResult(msgspec.Struct, frozen=True, kw_only=True):
    """A finished retrain: the new version, its quality, and whether it now serves (and why)."""

    status: Literal["success"] = "success"
    job_id: str
    version: str
    promoted: bool
    reason: str
    """Why it was promoted or kept back."""
    accuracy: float
    """Test accuracy (the original API's field)."""
    test_accuracy: float
    cv_accuracy_mean: float
    cv_accuracy_std: float
    parity: ParityReply
    previous_version: str | None
    """The version served when the job finished, before the promotion decision."""
    current_version: str | None
    """The version served after the decision."""
    params: Params
    data_sha256: str
    data_rows: int
    duration_seconds: float


class JobError(msgspec.Struct, frozen=True):
    """Why a job failed (``code`` as in the error shape)."""

    code: str
    message: str


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A retrain job as ``GET /jobs/{id}`` shows it (and as stored in ``artifacts/jobs``)."""

    job_id: str
    state: JobState
    url: str
    created_at: str
    finished_at: str | None = None
    params: Params
    force: bool
    data_sha256: str | None = None
    data_rows: int | None = None
    result: RetrainResult | None = None
    error: JobError | None = None


class JobAccepted(msgspec.Struct, frozen=True):
    """The 202 answer to ``POST /retrain?wait=false``: poll ``job_url``."""

    job_id: str
    job_url: str
    state: JobState
    status: Literal["accepted"] = "accepted"


class VersionSummary(msgspec.Struct, frozen=True):
    """One published version in ``GET /models``."""

    version: str
    current: bool
    created_at: str
    params: Params
    metrics: Metrics
    parity_passed: bool
    data_sha256: str
    data_rows: int


class ModelsReply(msgspec.Struct, frozen=True):
    """``GET /models``: every published version, oldest first, and the current one."""

    current_version: str | None
    versions: list[VersionSummary]


class SwitchReply(msgspec.Struct, frozen=True):
    """The answer to a promote or a rollback; every worker serves it within seconds."""

    current_version: str
    previous_version: str | None
    status: Literal["success"] = "success"
    ended_policy: RoutingPolicy | None = None
    """The traffic policy this switch removed (its primary was the previous version: a new
    ``current`` serves alone until a new policy is set). None: there was none to end."""
