"""Questions about a period, answered from the verified log: ``audit who-had --from --to``."""

from datetime import datetime
from typing import Any

from sqlmodel import Session

from audit.chain import VerifiedHead, verify_chain
from audit.log import format_ts
from audit.period import Timeline
from audit.stream import SealCursor, stream_events
from govern import validate
from govern.context import Context, reading
from govern.errors import InvalidInput
from govern.services.common import get_account
from govern.timeutil import format_time


def verified_timeline(session: Session) -> tuple[Timeline, VerifiedHead]:
    """The whole log, verified (chain, seals, rules) and read into a :class:`Timeline` on the way.

    The timeline sees each event as it streams into the verifier and is returned only when
    the whole log verified: a tampered log raises ``ChainError`` (exit 6) and answers nothing.
    """
    timeline = Timeline()

    def feed() -> Any:
        for event in stream_events(session):
            timeline.add(event)
            yield event

    result = verify_chain(feed(), SealCursor(session))
    timeline.finish(result.state)
    return timeline, result


def check_period(start: datetime, end: datetime) -> tuple[str, str]:
    if end <= start:
        raise InvalidInput("--to must be after --from")
    return format_ts(start), format_ts(end)


def who_had_during(ctx: Context, slug: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Every holding of ``slug`` overlapping ``[start, end)``: how it started and ended, and use."""
    from govern.services.auditing import _may_ask_about

    slug = validate.slug(slug)
    lo, hi = check_period(start, end)
    with reading(ctx) as (session, me):
        account = get_account(session, slug)
        _may_ask_about(session, me, account, ctx.now())
        timeline, _result = verified_timeline(session)
    now = format_ts(ctx.now())
    return {
        "account": slug,
        "from": format_time(start),
        "to": format_time(end),
        "existed": slug in timeline.accounts and timeline.accounts[slug] < hi,
        "people": timeline.during(slug, lo, hi, now),
        "denied": timeline.denials(slug, lo, hi),
    }
