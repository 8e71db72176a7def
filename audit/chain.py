"""The chain format: canonical encoding, event hashes, seal messages, verification.

Pure functions over plain records, so the same code verifies a live database and
an offline export.
"""

import base64
import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from audit.errors import ChainError
from vault import IntegrityError, verify_signature

if TYPE_CHECKING:
    from audit.state import LogState

CHAIN_VERSION = 1
_encode = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses for str


def _string(value: str | None) -> str:
    return "null" if value is None else _encode(value)


GENESIS_HASH = "0" * 64
_EVENT_DOMAIN = b"govern-audit-event/v1\n"
_SEAL_DOMAIN = b"govern-audit-seal/v1\n"


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8, no floats, no NaN."""
    _reject_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("floats are not allowed in audit data; use integers or strings")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("audit data keys must be strings")
            _reject_floats(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _reject_floats(item)


@dataclass(frozen=True)
class EventRecord:
    """One audit event as stored. ``data`` is canonical JSON text."""

    seq: int
    tx: str
    ts: str
    actor: str
    action: str
    account: str | None
    subject: str | None
    reason: str | None
    data: str
    prev: str
    hash: str

    def body(self) -> dict[str, Any]:
        return {
            "v": CHAIN_VERSION,
            "seq": self.seq,
            "tx": self.tx,
            "ts": self.ts,
            "actor": self.actor,
            "action": self.action,
            "account": self.account,
            "subject": self.subject,
            "reason": self.reason,
            "data": self.data,
            "prev": self.prev,
        }

    def canonical_body(self) -> str:
        """``canonical_json(self.body())``, written out directly: the hot path of verification.

        Keys in sorted order, strings escaped exactly as ``json.dumps`` escapes them;
        any field of an unexpected type falls back to the general encoder (and then
        fails to match, as it should).
        """
        if not (
            type(self.seq) is int
            and type(self.tx) is str
            and type(self.ts) is str
            and type(self.actor) is str
            and type(self.action) is str
            and type(self.data) is str
            and type(self.prev) is str
            and (self.account is None or type(self.account) is str)
            and (self.subject is None or type(self.subject) is str)
            and (self.reason is None or type(self.reason) is str)
        ):
            return json.dumps(self.body(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return (
            f'{{"account":{_string(self.account)},"action":{_encode(self.action)},"actor":{_encode(self.actor)},'
            f'"data":{_encode(self.data)},"prev":{_encode(self.prev)},"reason":{_string(self.reason)},'
            f'"seq":{self.seq},"subject":{_string(self.subject)},"ts":{_encode(self.ts)},"tx":{_encode(self.tx)},'
            f'"v":{CHAIN_VERSION}}}'
        )

    def computed_hash(self) -> str:
        """The hash the fields give; ``""`` (which matches no hash) for fields of the wrong type."""
        try:
            return hashlib.sha256(_EVENT_DOMAIN + self.canonical_body().encode("utf-8")).hexdigest()
        except (TypeError, ValueError, OverflowError, RecursionError, UnicodeEncodeError):
            return ""

    def data_object(self) -> dict[str, Any]:
        value = json.loads(self.data)
        if not isinstance(value, dict):
            raise ValueError("event data is not an object")
        return value


@dataclass(frozen=True)
class SealRecord:
    """The signed head of one transaction."""

    tx: str
    first_seq: int
    last_seq: int
    head: str
    signer: str
    key: str
    ts: str
    signature: str

    def message(self) -> bytes:
        """``seal_message(...)``, written out directly (checked equal by a property test)."""
        if (
            type(self.first_seq) is int
            and type(self.last_seq) is int
            and type(self.head) is str
            and type(self.key) is str
            and type(self.signer) is str
            and type(self.ts) is str
            and type(self.tx) is str
        ):
            text = (
                f'{{"first_seq":{self.first_seq},"head":{_encode(self.head)},"key":{_encode(self.key)},'
                f'"last_seq":{self.last_seq},"signer":{_encode(self.signer)},"ts":{_encode(self.ts)},'
                f'"tx":{_encode(self.tx)},"v":{CHAIN_VERSION}}}'
            )
            return _SEAL_DOMAIN + text.encode("utf-8")
        return seal_message(
            tx=self.tx,
            first_seq=self.first_seq,
            last_seq=self.last_seq,
            head=self.head,
            signer=self.signer,
            key=self.key,
            ts=self.ts,
        )


def event_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(_EVENT_DOMAIN + canonical_json(body).encode("utf-8")).hexdigest()


def seal_message(*, tx: str, first_seq: int, last_seq: int, head: str, signer: str, key: str, ts: str) -> bytes:
    body = {
        "v": CHAIN_VERSION,
        "tx": tx,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "head": head,
        "signer": signer,
        "key": key,
        "ts": ts,
    }
    return _SEAL_DOMAIN + canonical_json(body).encode("utf-8")


@dataclass(frozen=True)
class VerifiedHead:
    """What a successful verification saw, and the state the log proves at its head."""

    events: int
    transactions: int
    last_seq: int
    head: str
    state: "LogState"

    @property
    def keys(self) -> dict[str, tuple[str, bytes]]:
        """``fingerprint -> (owner, ed25519)`` of every key the verified log introduced."""
        return {fp: (key.owner, key.ed25519) for fp, key in self.state.keys.items()}


def _group_by_tx(events: Iterable[EventRecord]) -> Iterator[list[EventRecord]]:
    group: list[EventRecord] = []
    for event in events:
        if group and event.tx != group[-1].tx:
            yield group
            group = []
        group.append(event)
    if group:
        yield group


class SealLookup(Protocol):
    def get(self, tx: str, /) -> "SealRecord | None": ...


class _SignatureChecks:
    """Ed25519 verification in worker threads (the library releases the GIL), in order.

    Batches are checked oldest first, so the first failure found is the first bad
    transaction; at most ``max_pending`` batches wait, keeping memory flat.
    """

    def __init__(self, workers: int | None = None, batch: int = 256, max_pending: int = 8) -> None:
        self._workers = workers or max(2, os.cpu_count() or 2)
        self._size = batch
        self._max_pending = max_pending
        self._batch: list[tuple[int, bytes, bytes, bytes]] = []
        self._pending: deque[Future[int | None]] = deque()
        self._pool: ThreadPoolExecutor | None = None

    @staticmethod
    def _check(batch: list[tuple[int, bytes, bytes, bytes]]) -> int | None:
        for seq, public, message, signature in batch:
            try:
                verify_signature(public, message, signature)
            except IntegrityError:
                return seq
        return None

    def add(self, seq: int, public: bytes, message: bytes, signature: bytes) -> None:
        self._batch.append((seq, public, message, signature))
        if len(self._batch) >= self._size:
            self._submit()
            self._drain(self._max_pending)

    def _submit(self) -> None:
        if not self._batch:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="govern-verify")
        self._pending.append(self._pool.submit(self._check, self._batch))
        self._batch = []

    def _drain(self, keep: int) -> None:
        while len(self._pending) > keep:
            failed = self._pending.popleft().result()
            if failed is not None:
                self.close()
                raise ChainError("transaction signature does not verify", failed)

    def finish(self) -> None:
        """Raise for the first bad signature, if any; always release the threads."""
        try:
            self._submit()
            self._drain(0)
        finally:
            self.close()

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def verify_chain(
    events: Iterable[EventRecord],
    seals: SealLookup,
    *,
    state: "LogState | None" = None,
    progress: Callable[[int], None] | None = None,
) -> VerifiedHead:
    """Verify hash links, sequence numbers, every seal's signature and the rules of the log.

    ``events`` must be in ascending ``seq`` order, starting right after ``state``'s head
    (a fresh state: from the genesis). Public keys come only from the verified state,
    never from the tables, and each transaction is replayed into ``state`` under the
    rules of :mod:`audit.state`. Raises :class:`ChainError` naming the first bad event;
    ``state`` is then left half-updated and must be discarded. Memory stays flat: one
    transaction is held at a time, and signatures are checked by worker threads a
    bounded number of batches behind.
    """
    from audit.state import LogState

    state = LogState() if state is None else state
    checks = _SignatureChecks()
    try:
        result = _verify(events, seals, state, checks, progress)
    except ChainError as error:
        try:
            checks.finish()  # an earlier bad signature is the first bad event
        except ChainError as earlier:
            if error.seq is None or (earlier.seq is not None and earlier.seq < error.seq):
                raise earlier from None
        raise
    checks.finish()
    return result


def _check_link(event: EventRecord, expected_seq: int, prev: str) -> None:
    """One event's place in the chain: its sequence number, its link and its own hash."""
    if type(event.seq) is not int:
        raise ChainError("event is malformed (its sequence number is not an integer)", expected_seq)
    if event.seq > expected_seq:
        raise ChainError(f"missing: the log jumps from event {expected_seq - 1} to {event.seq}", expected_seq)
    if event.seq != expected_seq:
        raise ChainError(f"sequence number out of order (expected {expected_seq})", event.seq)
    if event.prev != prev:
        raise ChainError("previous-hash link does not match", event.seq)
    if event.computed_hash() != event.hash:
        raise ChainError("event hash does not match its contents", event.seq)


def _verify(
    events: Iterable[EventRecord],
    seals: SealLookup,
    state: "LogState",
    checks: _SignatureChecks,
    progress: Callable[[int], None] | None,
) -> VerifiedHead:
    prev = state.head
    expected_seq = state.seq + 1
    count = 0
    transactions = 0
    for group in _group_by_tx(events):
        first = group[0]
        for event in group:
            _check_link(event, expected_seq, prev)
            prev = event.hash
            expected_seq += 1
            count += 1
        seal = seals.get(first.tx)
        last = group[-1]
        if seal is None:
            raise ChainError("transaction has no signed seal", first.seq)
        if seal.last_seq > last.seq and seal.first_seq == first.seq:
            raise ChainError("event missing: its transaction's seal covers it", last.seq + 1)
        if (seal.first_seq, seal.last_seq, seal.head, seal.tx) != (first.seq, last.seq, last.hash, first.tx):
            raise ChainError("transaction seal does not cover its events", first.seq)
        public = state.apply_transaction(group, seal)
        try:
            signature = base64.b64decode(seal.signature, validate=True)
        except ValueError:
            raise ChainError("transaction signature does not verify", first.seq) from None
        try:
            message = seal.message()
        except (TypeError, ValueError):
            raise ChainError("transaction seal is malformed", first.seq) from None
        checks.add(first.seq, public, message, signature)
        transactions += 1
        if progress is not None:
            progress(len(group))
    return VerifiedHead(events=count, transactions=transactions, last_seq=expected_seq - 1, head=prev, state=state)
