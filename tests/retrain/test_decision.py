"""The promotion decision: parity-passed versions promote unless clearly worse (or forced)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from serving.lifecycle.jobs import decide

accuracy = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
tolerance = st.floats(min_value=0.0, max_value=0.2, allow_nan=False)


def test_first_model_is_always_promoted() -> None:
    decision = decide(0.5, None, force=False, tolerance=0.0)
    assert decision.promote
    assert "no model" in decision.reason


def test_worse_beyond_tolerance_is_kept_back_with_the_figures() -> None:
    decision = decide(0.90, 0.985, force=False, tolerance=0.02)
    assert not decision.promote
    assert decision.reason.startswith("kept back")
    assert "0.9000" in decision.reason and "0.9850" in decision.reason and "0.02" in decision.reason


def test_force_promotes_a_worse_model_and_says_so() -> None:
    decision = decide(0.90, 0.985, force=True, tolerance=0.02)
    assert decision.promote
    assert "forced" in decision.reason


def test_exactly_at_the_tolerance_promotes() -> None:
    assert decide(0.96, 0.98, force=False, tolerance=0.02).promote


@given(new=accuracy, current=accuracy, tol=tolerance, force=st.booleans())
def test_promotes_iff_not_worse_than_tolerance_or_forced(
    new: float, current: float, tol: float, force: bool
) -> None:
    decision = decide(new, current, force=force, tolerance=tol)
    if current - new > tol + 1e-9:
        assert decision.promote is force
    elif current - new <= tol - 1e-9:
        assert decision.promote
    assert decision.reason


@given(new=accuracy, current=accuracy, tol=tolerance)
def test_a_better_model_always_promotes(new: float, current: float, tol: float) -> None:
    if new >= current:
        assert decide(new, current, force=False, tolerance=tol).promote
