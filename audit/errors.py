"""Errors raised by the audit package."""


class ChainError(Exception):
    """The audit chain is broken: an event or seal does not verify.

    ``seq`` names the first event (sequence number) found bad, when known.
    """

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message if seq is None else f"event {seq}: {message}")
        self.seq = seq


class RuleViolation(ChainError):
    """A transaction whose links and seal are sound but which breaks a rule of the log.

    It is attributed to the seal's signer: ``first`` is its first event's sequence number,
    ``seq`` the event that broke ``rule``. A verifier may contain it (skip it and go on,
    audit/contain.py) instead of stopping: one insider must not stop everyone (issue 19).
    """

    def __init__(self, rule: str, seq: int, *, first: int = 0, signer: str = "") -> None:
        super().__init__(rule, seq)
        self.rule = rule
        self.first = first
        self.signer = signer
