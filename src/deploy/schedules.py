"""Schedules for deployments, where a user imports them: `from headwater.deploy.schedules
import Cron, Interval, RRule`. They are defined in `headwater.api.schedules`, because the
state service's scheduler computes their ticks and the service stands below this package."""

from ..api.schedules import (
    CATCHUP_POLICIES as CATCHUP_POLICIES,
    OVERLAP_POLICIES as OVERLAP_POLICIES,
    Cron as Cron,
    Interval as Interval,
    RRule as RRule,
    Schedule as Schedule,
    Tick as Tick,
    content_key as content_key,
    parse_interval as parse_interval,
    preview as preview,
    schedule_from_dict as schedule_from_dict,
    ticks as ticks,
)

__all__ = [
    "CATCHUP_POLICIES", "OVERLAP_POLICIES", "Cron", "Interval", "RRule", "Schedule", "Tick", "content_key",
    "parse_interval", "preview", "schedule_from_dict", "ticks",
]  # fmt: skip
