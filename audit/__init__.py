"""The tamper-evident event log: canonical encoding, hash chain and signed seals.

Events are appended in the same database transaction as the change they record.
Each event's hash covers its fields and the previous event's hash; each
transaction ends with a seal naming its first and last event and the head hash,
signed with the acting person's Ed25519 key. See docs/audit.md for the format.
"""

from audit.chain import (
    CHAIN_VERSION,
    GENESIS_HASH,
    EventRecord,
    SealRecord,
    canonical_json,
    event_hash,
    seal_message,
)
from audit.errors import ChainError

__all__ = [
    "CHAIN_VERSION",
    "GENESIS_HASH",
    "ChainError",
    "EventRecord",
    "SealRecord",
    "canonical_json",
    "event_hash",
    "seal_message",
]
