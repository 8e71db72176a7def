"""Errors raised by the audit package."""


class ChainError(Exception):
    """The audit chain is broken: an event or seal does not verify.

    ``seq`` names the first event (sequence number) found bad, when known.
    """

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message if seq is None else f"event {seq}: {message}")
        self.seq = seq
