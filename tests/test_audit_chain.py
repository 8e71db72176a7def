"""The audit chain format, pinned by a golden vector, and the pure verifier's tamper checks.

Regenerate the vector only for a deliberate format change (and bump CHAIN_VERSION):
    python tests/test_audit_chain.py --regenerate
"""

import base64
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import GENESIS_HASH, EventRecord, SealRecord, canonical_json, event_hash, seal_message
from audit.chain import verify_chain
from audit.errors import ChainError
from vault import PersonKeys, RecoveryKey

GOLDEN = Path(__file__).parent / "vectors" / "audit_chain.json"


def fixed_keys() -> PersonKeys:
    return PersonKeys(
        X25519PrivateKey.from_private_bytes(bytes(range(32))),
        Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64))),
    )


def fixed_recovery() -> RecoveryKey:
    return RecoveryKey(X25519PrivateKey.from_private_bytes(bytes(range(64, 96))))


def build_golden() -> dict[str, Any]:
    """A small legal log: init (vault, first admin, her keys), then an account and a policy."""
    keys = fixed_keys()
    recovery = fixed_recovery()
    txs: list[tuple[str, str, list[tuple[str, str | None, str | None, str | None, dict[str, Any]]]]] = [
        (
            "00000000-0000-4000-8000-000000000001",
            "2026-03-03T09:00:00.000000Z",
            [
                (
                    "vault.initialised",
                    None,
                    None,
                    None,
                    {
                        "org": "Acme",
                        "vault_id": "00000000-0000-4000-8000-0000000000aa",
                        "recovery_key": {
                            "fingerprint": recovery.fingerprint,
                            "x25519": base64.b64encode(recovery.public).decode(),
                            "ed25519": base64.b64encode(recovery.signing_public).decode(),
                        },
                    },
                ),
                ("staff.added", None, "alice", None, {"name": "Alice", "email": None, "team": None, "role": "admin"}),
                (
                    "staff.enrolled",
                    None,
                    "alice",
                    None,
                    {
                        "public_keys": {
                            "fingerprint": keys.public.fingerprint,
                            "x25519": base64.b64encode(keys.public.x25519).decode(),
                            "ed25519": base64.b64encode(keys.public.ed25519).decode(),
                        }
                    },
                ),
            ],
        ),
        (
            "00000000-0000-4000-8000-000000000002",
            "2026-03-03T09:05:00.000000Z",
            [
                (
                    "account.added",
                    "x-acme",
                    None,
                    "runs the X account — ünïcode",
                    {"owner": None, "max_holders": 3, "rotate_every": None, "platform": "x"},
                ),
                ("policy.published", None, None, None, {"version": "1", "sha256": "0" * 64, "characters": 1}),
            ],
        ),
    ]
    events: list[EventRecord] = []
    seals: list[SealRecord] = []
    prev, seq = GENESIS_HASH, 1
    for tx, ts, items in txs:
        first = seq
        for action, account, subject, reason, data in items:
            record = EventRecord(seq, tx, ts, "alice", action, account, subject, reason, canonical_json(data), prev, "")
            record = replace(record, hash=event_hash(record.body()))
            events.append(record)
            prev, seq = record.hash, seq + 1
        unsigned = SealRecord(tx, first, seq - 1, prev, "alice", keys.public.fingerprint, ts, "")
        seals.append(replace(unsigned, signature=base64.b64encode(keys.sign(unsigned.message())).decode()))
    return {"events": [asdict(e) for e in events], "seals": [asdict(s) for s in seals], "head": prev}


def load_golden() -> tuple[list[EventRecord], dict[str, SealRecord], str]:
    data = json.loads(GOLDEN.read_text(encoding="utf-8"))
    events = [EventRecord(**e) for e in data["events"]]
    seals = {s["tx"]: SealRecord(**s) for s in data["seals"]}
    return events, seals, data["head"]


def test_golden_vector_is_reproduced_exactly() -> None:
    assert build_golden() == json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_golden_vector_verifies() -> None:
    events, seals, head = load_golden()
    result = verify_chain(events, seals)
    assert (result.events, result.transactions, result.last_seq, result.head) == (5, 2, 5, head)
    assert result.state.people["alice"].role == "admin"
    assert result.state.recovery_fingerprint == fixed_recovery().fingerprint


FIELDS = ["tx", "ts", "actor", "action", "account", "subject", "reason", "data", "prev", "hash"]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("index", [0, 2, 3])
def test_editing_any_field_of_any_event_is_caught_at_that_event(field: str, index: int) -> None:
    events, seals, _ = load_golden()
    original = getattr(events[index], field)
    changed = '{"x":1}' if field == "data" else ("f" * 64 if field in ("prev", "hash") else f"{original}!")
    events[index] = replace(events[index], **{field: changed})
    with pytest.raises(ChainError) as caught:
        verify_chain(events, seals)
    # A tx change splits a transaction, caught at the first event of the (new) group;
    # every other edit is caught exactly at the edited event.
    assert caught.value.seq is not None
    assert caught.value.seq <= events[index].seq


def test_deleting_inserting_reordering_and_forging() -> None:
    events, seals, _ = load_golden()
    with pytest.raises(ChainError) as caught:
        verify_chain(events[:1] + events[2:], seals)
    assert caught.value.seq == 2, "a deleted event is named by its own sequence number"
    with pytest.raises(ChainError) as caught:
        verify_chain(events[:4], seals)
    assert caught.value.seq == 5
    with pytest.raises(ChainError) as caught:
        verify_chain([events[0], events[2], events[1], events[3]], seals)
    assert caught.value.seq is not None
    inserted = replace(events[1], seq=3)
    with pytest.raises(ChainError):
        verify_chain([*events[:2], inserted, *events[2:]], seals)
    forged = dict(seals)
    tx2 = events[3].tx
    forged[tx2] = replace(seals[tx2], signature=base64.b64encode(bytes(64)).decode())
    with pytest.raises(ChainError) as caught:
        verify_chain(events, forged)
    assert caught.value.seq == 4
    missing = {k: v for k, v in seals.items() if k != tx2}
    with pytest.raises(ChainError, match="no signed seal"):
        verify_chain(events, missing)


def test_a_signature_by_an_unknown_key_is_rejected() -> None:
    events, seals, _ = load_golden()
    tx2 = events[3].tx
    mallory = PersonKeys.generate()
    unsigned = replace(seals[tx2], key=mallory.public.fingerprint, signature="")
    seals[tx2] = replace(unsigned, signature=base64.b64encode(mallory.sign(unsigned.message())).decode())
    with pytest.raises(ChainError, match="unknown key"):
        verify_chain(events, seals)


def test_canonical_json_rejects_floats_and_sorts_keys() -> None:
    assert canonical_json({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'
    with pytest.raises(TypeError):
        canonical_json({"x": 1.5})


_text = st.text()


@settings(max_examples=300)
@given(
    seq=st.integers(0, 10**12),
    fields=st.tuples(_text, _text, _text, _text, _text, _text),
    optional=st.tuples(st.none() | _text, st.none() | _text, st.none() | _text),
)
def test_the_fast_canonical_encoding_is_the_canonical_encoding(
    seq: int, fields: tuple[str, ...], optional: tuple[str | None, ...]
) -> None:
    """The hand-written hot path must equal canonical_json byte for byte, for any text."""
    tx, ts, actor, action, data, prev = fields
    account, subject, reason = optional
    event = EventRecord(seq, tx, ts, actor, action, account, subject, reason, data, prev, "")
    assert event.canonical_body() == canonical_json(event.body())
    seal = SealRecord(tx, seq, seq + 1, prev, actor, action, ts, "")
    assert seal.message() == seal_message(
        tx=tx, first_seq=seq, last_seq=seq + 1, head=prev, signer=actor, key=action, ts=ts
    )


def test_a_bad_signature_before_a_bad_hash_is_named_first() -> None:
    events, seals, _ = load_golden()
    tx1 = events[0].tx
    seals[tx1] = replace(seals[tx1], signature=base64.b64encode(bytes(64)).decode())
    events[3] = replace(events[3], reason="edited")
    with pytest.raises(ChainError) as caught:
        verify_chain(events, seals)
    assert caught.value.seq == 1


if __name__ == "__main__" and sys.argv[1:] == ["--regenerate"]:
    GOLDEN.write_text(json.dumps(build_golden(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")  # noqa: T201
