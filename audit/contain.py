"""Containment: an insider's bad transaction is named and skipped, not a stop for everyone.

A transaction whose hash links and seal signature are sound, signed with a key the log
introduced (it is attributed to that key's owner, whatever the seal claims), but which
breaks a rule of the log (a :class:`RuleViolation`) is recorded in the state
(``LogState.violations``: signer, event, rule) and left out of it, and verification goes
on. Everything else (a broken hash link, a bad or missing signature, a reordered or
truncated log, an unknown key) stays fatal exactly as before. More than ``MAX_VIOLATIONS``
new ones in one verification are fatal too (each costs one more replay from the pin).

The state is replayed from a fresh copy for each violation found (``fresh``: the pinned
state, or an empty one), so that the skipped transaction leaves no trace in it. Violations
are rare; the path with none costs nothing more than :func:`audit.chain.verify_chain`.
"""

from collections.abc import Callable, Iterable

from audit.chain import EventRecord, SealLookup, VerifiedHead, verify_chain
from audit.errors import RuleViolation
from audit.state import LogState

# A log with more contained transactions than this is not worth replaying again and again.
MAX_VIOLATIONS = 1000


def verify_contained(
    fresh: Callable[[], LogState],
    events_after: Callable[[int], Iterable[EventRecord]],
    seals: SealLookup,
    *,
    not_after: str | None,
    progress: Callable[[int], None] | None = None,
) -> VerifiedHead:
    """Verify like :func:`verify_chain`, containing attributable rule violations.

    ``fresh()`` returns the state to start from (a new object each call), ``events_after(seq)``
    the events after ``seq`` in order; ``not_after`` is the verifier's clock plus the allowed
    skew (ISO time with microseconds), or ``None`` to accept any future time.
    """
    contained: dict[int, tuple[int, str, str]] = {}
    while True:
        state = fresh()
        state.contain(contained, not_after)
        try:
            return verify_chain(events_after(state.seq), seals, state=state, progress=progress)
        except RuleViolation as violation:
            if violation.first in contained or len(contained) >= MAX_VIOLATIONS or not violation.signer:
                raise
            contained[violation.first] = (violation.seq or violation.first, violation.signer, violation.rule)
