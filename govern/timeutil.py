"""Durations (``45s 30m 12h 90d 2w``) and ISO 8601 times, always timezone-aware UTC."""

import os
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from govern.errors import InvalidInput

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"([1-9][0-9]{0,5})([smhdw])")
_MAX = timedelta(days=3660)


# Test hook: the suite runs with every process's clock moved (``make test-future`` sets a
# year), to prove that no test depends on today's date. Unset outside tests.
CLOCK_SHIFT_ENV = "GOVERN_TEST_CLOCK_SHIFT"


def utcnow() -> datetime:
    shift = os.environ.get(CLOCK_SHIFT_ENV)
    return datetime.now(UTC) + (_clock_shift(shift) if shift else timedelta(0))


@lru_cache(maxsize=4)
def _clock_shift(text: str) -> timedelta:
    return parse_duration(text)


def parse_duration(text: str) -> timedelta:
    """Parse ``45s``, ``30m``, ``12h``, ``90d`` or ``2w``; at most ten years."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise InvalidInput(f"invalid duration {text!r}: use a number and a unit, like 45s 30m 12h 90d 2w")
    value = timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    if value > _MAX:
        raise InvalidInput(f"duration {text!r} is longer than ten years")
    return value


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        size = _UNITS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_time(text: str) -> datetime:
    """Parse ISO 8601; a time without an offset is UTC. Returns UTC."""
    cleaned = text.strip()
    if cleaned.endswith(("z", "Z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise InvalidInput(f"invalid time {text!r}: use ISO 8601, like 2026-03-03T09:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
