"""The orchestration table, tested as a table: no server, no threads."""

from __future__ import annotations

import pytest

from headwater.api import rules

ALL = sorted(rules.STATE_TYPES)
LEGAL = {
    None: {"PENDING", "SCHEDULED", "RUNNING"},
    "SCHEDULED": {"PENDING", "RUNNING", "CANCELLED", "CRASHED", "PAUSED"},
    "PENDING": {"PENDING", "RUNNING", "SCHEDULED", "CANCELLED", "CRASHED", "PAUSED", "FAILED"},
    "RUNNING": {"COMPLETED", "FAILED", "CRASHED", "CANCELLED", "PAUSED", "SCHEDULED"},
    "PAUSED": {"RUNNING", "PENDING", "CANCELLED", "CRASHED"},
    "COMPLETED": set(), "FAILED": set(), "CRASHED": set(), "CANCELLED": set(),
}  # fmt: skip


@pytest.mark.parametrize("current", [None, *ALL])
@pytest.mark.parametrize("proposed", ALL)
def test_transition_table(current: str | None, proposed: str) -> None:
    assert rules.is_allowed(current, proposed) == (proposed in LEGAL[current])


@pytest.mark.parametrize("current", ["FAILED", "CRASHED", "CANCELLED"])
@pytest.mark.parametrize("proposed", ["SCHEDULED", "PENDING", "RUNNING"])
def test_explicit_retry_leaves_a_failed_terminal_state(current: str, proposed: str) -> None:
    assert not rules.is_allowed(current, proposed)
    assert rules.is_allowed(current, proposed, retry=True)


def test_completed_is_final_even_for_a_retry() -> None:
    assert not rules.is_allowed("COMPLETED", "RUNNING", retry=True)


def test_rejection_message_names_run_from_and_to() -> None:
    message = rules.check_transition("abc", "COMPLETED", "RUNNING")
    assert message is not None and "abc" in message and "COMPLETED -> RUNNING" in message


def test_sub_state_names_must_match_their_type() -> None:
    assert rules.check_state("RUNNING", "Retrying") is None
    assert rules.check_state("COMPLETED", "Cached") is None
    assert "belongs to FAILED" in (rules.check_state("COMPLETED", "TimedOut") or "")
    assert "unknown state type" in (rules.check_state("DONE", "Done") or "")
    assert rules.check_state("PENDING", "AwaitingConcurrencySlot") is None
