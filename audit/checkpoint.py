"""Checkpoints: a signed statement of the chain head, kept outside the vault.

A later verification that finds the log shorter than a checkpoint (or the checkpointed
event changed) proves the tail was truncated or rewritten.
"""

import base64
import json
from collections.abc import Callable
from typing import Any

from audit.chain import canonical_json
from audit.errors import ChainError
from vault import IntegrityError, verify_signature

CHECKPOINT_FORMAT = "govern-audit-checkpoint"
_DOMAIN = b"govern-audit-checkpoint/v1\n"
_FIELDS = ("format", "v", "vault_id", "seq", "head", "ts", "signer", "key")


def checkpoint_message(body: dict[str, Any]) -> bytes:
    return _DOMAIN + canonical_json({k: body[k] for k in _FIELDS}).encode("utf-8")


def make_checkpoint(
    *, vault_id: str, seq: int, head: str, ts: str, signer: str, key: str, sign: Callable[[bytes], bytes]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "v": 1,
        "vault_id": vault_id,
        "seq": seq,
        "head": head,
        "ts": ts,
        "signer": signer,
        "key": key,
    }
    body["signature"] = base64.b64encode(sign(checkpoint_message(body))).decode("ascii")
    return body


def read_checkpoint(text: str, keys: dict[str, tuple[str, bytes]]) -> dict[str, Any]:
    """Parse and check a checkpoint's signature against the keys the log introduced."""
    try:
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("format") != CHECKPOINT_FORMAT or body.get("v") != 1:
            raise ValueError
        message = checkpoint_message(body)
        signature = base64.b64decode(body["signature"], validate=True)
        if not isinstance(body["seq"], int) or not isinstance(body["head"], str):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise ChainError("the checkpoint file is malformed") from None
    owner = keys.get(str(body["key"]))
    if owner is None or owner[0] != body["signer"]:
        raise ChainError(f"the checkpoint is signed by a key the log does not know ({body['key']})")
    try:
        verify_signature(owner[1], message, signature)
    except IntegrityError:
        raise ChainError("the checkpoint's signature does not verify") from None
    return body
