"""The rules of the log, and the state it proves: pure functions over events, no database.

A vault's database is shared and writable by everyone who uses it, so its rows are a
cache; the signed log is the truth. :class:`LogState` replays verified transactions and
enforces the rules of the log (docs/security.md, properties 9 to 13):

- keys enter only through ``vault.initialised`` (the first admin and the recovery key),
  ``staff.enrolled`` of an *invited* person, signed by the key derived from their one-time
  code, and ``vault.recovered``, signed by the key derived from the recovery key;
- a key belongs to one person for ever, and its fingerprint is recomputed from the full
  public keys;
- every event of a transaction has the seal's signer as its actor, and every event is
  checked against its actor's rights at that moment;
- a data key is wrapped only to the recovery key, active admins and live holders, and
  the events that create a credential version commit to its sealed fields and to a
  key-check value of its data key.

A transaction that breaks a rule raises :class:`ChainError` naming its first event. The
state also answers every question a command needs to decide (roles, statuses, public
keys, live grants, owners, caps, the recovery key, commitments), and serialises to JSON
so that a client can keep it beside its pin and verify only what is new.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from audit.errors import ChainError, RuleViolation
from vault import IntegrityError, PublicKeys, RecoveryKey, verify_signature

if TYPE_CHECKING:  # annotations only: audit.chain imports this module (no import cycle)
    from audit.chain import EventRecord, SealRecord

STATE_FORMAT = 4  # 2: offboarding cases keep their steps' kinds; 3: people keep their signed e-mail address;
# 4: every wrap ever made and knowledge records by version (exposure computed from the log, issue 19)
# (an older cached state is re-verified from the genesis)


@dataclass(frozen=True)
class Rule:
    """Who may sign an event type, about whom, and what it must be consistent with."""

    roles: frozenset[str]  # the signer's role at that moment
    who: str  # admin | admin or owner | admin or holder | self | anyone | (introductions)
    about: str
    consistent: str


_ALL = frozenset({"admin", "manager", "member", "auditor"})
_ADMIN = frozenset({"admin"})
_USERS = frozenset({"admin", "manager", "member"})  # everyone but auditors, who never decrypt


def _r(roles: frozenset[str], who: str, about: str, consistent: str) -> Rule:
    return Rule(roles, who, about, consistent)


# The rules of the log, as a table: every event type govern writes, who may sign it, about whom,
# and what the state must say for it to be accepted. Anything else is refused (closed by
# default). docs/security.md carries this table (tests/test_docs.py keeps them in sync); the
# handlers below check the "consistent with" column.
# fmt: off
RULES: dict[str, Rule] = {
    "vault.initialised": _r(_ADMIN, "genesis", "the vault", "first event only; recovery key fingerprint matches"),
    "vault.recovered": _r(_ADMIN, "recovery key", "a new admin", "signed by the vault's recovery key"),
    "staff.added": _r(_ADMIN, "admin", "a new person", "new handle; known role (init/recovery: itself as admin)"),
    "staff.invited": _r(_ADMIN, "admin", "an invited person", "person is invited; 32-byte enrolment key"),
    "staff.enrolled": _r(_ALL, "self", "the invited person", "signed with the invitation's code, before it expires"),
    "staff.role_changed": _r(_ADMIN, "admin", "a person", "'from' is the person's role in the log"),
    "staff.offboarded": _r(_ADMIN, "admin", "a person", "person exists"),
    "staff.passphrase_changed": _r(_ALL, "self", "themselves", "names their current key only"),
    "account.added": _r(_ADMIN, "admin", "an account", "new slug; owner is a person"),
    "account.updated": _r(_ADMIN, "admin", "an account", "owner is a person"),
    "access.requested": _r(_USERS, "self", "themselves", "new request on a known account"),
    "access.approved": _r(_ALL, "admin or owner", "a requester", "request pending; never their own"),
    "access.denied": _r(_ALL, "admin or owner", "a requester", "request pending; never their own"),
    "access.cancelled": _r(_ADMIN, "admin", "a requester", "request pending"),
    "access.withdrawn": _r(_ALL, "self", "their own request", "request pending and theirs"),
    "access.granted": _r(_ALL, "admin or owner", "an active non-auditor",
                         "owner: approves a request in the same transaction; cap, or an admin's access.over_cap;"
                         " keys wrapped only to the grantee's key"),
    "access.over_cap": _r(_ADMIN, "admin", "a grantee", "a grant over the cap in the same transaction"),
    "access.extended": _r(_ALL, "admin or owner", "a holder", "live time-boxed grant; owner holds it; later end"),
    "access.revoked": _r(_ADMIN, "admin", "a holder", "grants exist"),
    "access.expired": _r(_ALL, "anyone", "a holder", "the grant's end has passed"),
    "access.recorded": _r(_ADMIN, "admin", "a person", "the version exists"),
    "key.created": _r(_USERS, "admin or holder", "an account", "new key with a key-check value; wrapped to the"
                      " recovery key and every admin, and only to those who may hold it"),
    "key.wrapped": _r(_USERS, "admin", "a person", "recipient is the person's key and may hold the account"),
    "key.unwrapped": _r(_ALL, "admin", "a former holder",
                        "non-admin: subject no longer holds; keys are the subject's and the account's;"
                        " exposed list equals the exposure the log computes"),
    "key.retired": _r(_USERS, "admin or holder", "an account",
                      "removes only wraps of the keys it retires; never a custodian's"),
    "secret.set": _r(_USERS, "admin or holder", "an account", "sealed under a live key of it; next version"),
    "secret.revealed": _r(_USERS, "admin or holder", "an account", "signer may use the account"),
    "secret.denied": _r(_ALL, "self", "their own attempt", "known account; known reason"),
    "secret.destroyed": _r(_USERS, "anyone", "an account", "version superseded for longer than the retention"),
    "rotation.started": _r(_USERS, "admin or holder", "an account", "no other pending rotation; next version"),
    "rotation.confirmed": _r(_USERS, "admin or holder", "an account", "the rotation is pending"),
    "rotation.aborted": _r(_USERS, "admin or holder", "an account", "the rotation is pending; removes its key only"),
    "policy.published": _r(_ADMIN, "admin", "the policy", "-"),
    "policy.acknowledged": _r(_ALL, "self", "themselves", "the published text's digest"),
    "review.started": _r(_ADMIN, "admin", "a review", "-"),
    "review.certified": _r(_ALL, "admin or owner", "a grant", "owner: of an account they own, never their own grant"),
    "review.revoked": _r(_ADMIN, "admin", "a grant", "-"),
    "review.closed": _r(_ADMIN, "admin", "a review", "-"),
    "offboard.started": _r(_ADMIN, "admin", "a leaver", "the plan equals the one the log computes"),
    "offboard.step_done": _r(_ADMIN, "admin", "a leaver",
                             "step open; remove-access leaves no unmarked exposure"),
    "offboard.step_closed": _r(_ALL, "anyone", "a leaver",
                               "admin; the owner (manual steps); or whoever rotates the step's account in the same"
                               " transaction"),
    "offboard.step_waived": _r(_ADMIN, "admin", "a leaver", "step open"),
    "offboard.completed": _r(_ALL, "anyone", "a leaver", "every step closed (non-admin: by this transaction)"),
    "import.completed": _r(_ADMIN, "admin", "the vault", "-"),
    "client.repinned": _r(_ALL, "anyone", "their own client", "-"),
    "audit.violation_acknowledged": _r(_ADMIN, "admin", "a contained transaction",
                                       "names a contained transaction not yet acknowledged"),
}
# fmt: on

# Actions only an admin may take.
ADMIN_ACTIONS = frozenset(action for action, rule in RULES.items() if rule.who == "admin" and rule.roles == _ADMIN)
# Actions an admin or the account's owner may take.
OWNER_ACTIONS = frozenset({"access.approved", "access.denied", "review.certified"})
# Actions that read or change a credential: an admin or a live holder, never an auditor.
HOLDER_ACTIONS = frozenset(
    {"secret.set", "secret.revealed", "rotation.started", "rotation.confirmed", "rotation.aborted"}
)


def _rule_of(action: str) -> Rule:
    rule = RULES.get(action)
    if rule is None:
        raise RuleBroken(f"{action} is not an event govern writes")
    return rule


def _check_role(rule: Rule, event: EventRecord, actor: Person) -> None:
    if actor.role not in rule.roles:
        raise RuleBroken(
            f"{event.action} by {event.actor}, a {actor.role}: only {', '.join(sorted(rule.roles))} may sign it"
        )


def rule_table_markdown() -> str:
    """The rule table as docs/security.md shows it (tests/test_docs.py compares them)."""
    lines = ["| Event | Roles | Who signs | About | Consistent with |", "|---|---|---|---|---|"]
    for action, rule in RULES.items():
        roles = ", ".join(sorted(rule.roles))
        lines.append(f"| `{action}` | {roles} | {rule.who} | {rule.about} | {rule.consistent} |")
    return "\n".join(lines) + "\n"


KINDS = {"password": "password", "totp-uri": "totp", "recovery-codes": "recovery-codes"}
# How long a superseded version is kept before it is destroyed (govern.services.secrets).
RETENTION_S = 30 * 24 * 3600
# The longest reason an event may carry (input allows 1000; govern prefixes some, e.g. "offboarded: …").
MAX_REASON_CHARS = 2000
# Offboarding steps ``offboard start`` carries out itself (offboard.step_done closes them).
AUTOMATIC_STEPS = frozenset({"suspend", "cancel-requests", "reassign-owner", "remove-access"})
# How far ahead of the verifying client's clock an event may be dated (issue 19).
MAX_SKEW_S = 5 * 60
# Offboarding follow-up step kind of each exposure kind (offboarding/plan.py titles them).
FOLLOW_UP_STEPS = {"password": "rotate-password", "totp": "reenrol-totp", "recovery-codes": "regenerate-recovery-codes"}
# Why a reveal was refused (``secret.denied``): no live grant, an auditor, an earlier version.
DENIALS = frozenset({"no-grant", "auditor", "earlier-version"})

_ENROL_DOMAIN = b"govern-enrolment/v1\n"
_RECOVERY_DOMAIN = b"govern-recovery/v1\n"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def enrolment_message(vault_id: str, handle: str, fingerprint: str) -> bytes:
    """What the key derived from a one-time code signs: this person takes these keys."""
    return _ENROL_DOMAIN + _canonical({"vault_id": vault_id, "handle": handle, "key": fingerprint})


def recovery_message(vault_id: str, tx: str, admin: str, fingerprint: str) -> bytes:
    """What the recovery key's signing half signs: this transaction recovers with this admin."""
    return _RECOVERY_DOMAIN + _canonical({"vault_id": vault_id, "tx": tx, "admin": admin, "key": fingerprint})


def text_digest(value: str | list[str]) -> str:
    """The commitment to free text people read (a request's reason, a plan's step titles)."""
    return hashlib.sha256(b"govern-text/v1\n" + _canonical(value)).hexdigest()


def key_blob_digest(blob: bytes) -> str:
    """The commitment to a re-sealed private-key blob (``staff.passphrase_changed``)."""
    return hashlib.sha256(b"govern-key-blob/v1\n" + blob).hexdigest()


def sealed_digest(fields: dict[str, bytes]) -> str:
    """The commitment to a credential version's sealed fields (names and ciphertexts)."""
    body = {name: base64.b64encode(value).decode("ascii") for name, value in sorted(fields.items())}
    return hashlib.sha256(b"govern-sealed-fields/v1\n" + _canonical(body)).hexdigest()


_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def _is_time(value: object) -> bool:
    return isinstance(value, str) and _TIME.fullmatch(value) is not None


def retention_end(superseded: str) -> str:
    """When a version superseded at ``superseded`` (an event time) may be destroyed."""
    moment = datetime.strptime(superseded, "%Y-%m-%dT%H:%M:%S.%fZ") + timedelta(seconds=RETENTION_S)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in event data")


def _no_floats(text: str) -> Any:
    raise ValueError("floats are not allowed in event data")


def _strict_object(text: str) -> dict[str, Any]:
    """Event data as written by govern: a JSON object of strings, integers, lists and objects."""
    if not isinstance(text, str) or len(text) > 1_000_000:
        raise ValueError("event data is not JSON text")
    value = json.loads(text, parse_constant=_no_constants, parse_float=_no_floats)
    if not isinstance(value, dict):
        raise ValueError("event data is not an object")
    return value


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _unb64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not base64 text")
    return base64.b64decode(value, validate=True)


def iso_to_ts(value: Any) -> str | None:
    """Times in event data are ISO seconds (``…Z``); event times carry microseconds."""
    if value is None:
        return None
    text = str(value)
    return text[:-1] + ".000000Z" if text.endswith("Z") and "." not in text else text


class RuleBroken(Exception):
    """An event breaks a rule of the log (turned into a ChainError naming it)."""


@dataclass
class Key:
    owner: str
    x25519: bytes
    ed25519: bytes


@dataclass
class Person:
    handle: str
    role: str
    status: str
    key: str | None = None
    invite_key: bytes | None = None  # the public half of the key derived from the open code
    invite_expires: str | None = None
    admin_periods: list[list[str | None]] = field(default_factory=list)
    sealed: str | None = None  # digest of the key blob of their last passphrase change (govern passwd)
    email: str | None = None  # the address their signed ``staff.added`` gives (``govern notify`` writes to it)


@dataclass
class Account:
    slug: str
    owner: str | None
    max_holders: int
    rotate_every: str | None
    platform: str


@dataclass
class Grant:
    id: int
    account: str
    handle: str
    start: str
    until: str | None
    reason: str | None
    by: str
    request: int | None = None
    revoked: str | None = None
    expired: str | None = None

    def live_at(self, ts: str) -> bool:
        ended = [t for t in (self.revoked, self.until) if t is not None]
        return self.start <= ts and all(ts < t for t in ended)

    def end(self) -> str | None:
        ends = [t for t in (self.revoked, self.expired, self.until) if t is not None]
        return min(ends) if ends else None


@dataclass
class DataKey:
    id: int
    account: str
    kcv: str
    retired: bool = False


@dataclass
class Version:
    account: str
    number: int
    data_key: int
    sealed: str
    fields: list[str]
    changed: list[str]
    status: str
    at: str
    by: str
    how: str
    created: str = ""  # when it was sealed (a rotation's version is confirmed later: ``at``)
    superseded: str = ""  # when a newer value replaced it (its retention runs from then)


@dataclass
class Case:
    id: int
    handle: str
    steps: int
    deadline: str
    closed_steps: dict[str, str] = field(default_factory=dict)  # step number -> done | waived
    step_accounts: dict[str, str] = field(default_factory=dict)  # step number -> account it is about
    status: str = "open"
    step_kinds: dict[str, str] = field(default_factory=dict)  # step number -> kind (manual, rotate-password…)
    titles: str = ""  # text_digest of the steps' titles, in order (what people read; issue 19)


@dataclass
class LogState:
    """Everything the verified log says, up to ``seq``/``head``."""

    vault_id: str | None = None
    org: str | None = None
    genesis: str | None = None
    seq: int = 0
    head: str = "0" * 64
    recovery_fingerprint: str | None = None
    recovery_x25519: bytes | None = None
    recovery_ed25519: bytes | None = None
    keys: dict[str, Key] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    grants: dict[int, Grant] = field(default_factory=dict)
    data_keys: dict[int, DataKey] = field(default_factory=dict)
    wraps: set[tuple[int, str]] = field(default_factory=set)
    versions: dict[str, dict[int, Version]] = field(default_factory=dict)
    exposures: set[tuple[str, int, str, str]] = field(default_factory=set)  # account, version, handle, kind
    requests: dict[int, list[str]] = field(default_factory=dict)  # id -> [account, requester, status]
    rotations: dict[int, list[str]] = field(default_factory=dict)  # id -> [account, pending version, status]
    policies: dict[str, str] = field(default_factory=dict)  # version -> sha256 of the text
    acks: set[tuple[str, str]] = field(default_factory=set)  # policy version, handle
    reviews: dict[int, str] = field(default_factory=dict)
    review_decisions: dict[str, str] = field(default_factory=dict)  # "review:grant" -> certified | revoked
    knowledge: set[tuple[str, str]] = field(default_factory=set)  # account, handle
    cases: dict[int, Case] = field(default_factory=dict)
    last_ts: str = ""  # events never go back in time
    # Issue 19: the state computes exposure and the offboarding plan itself (rows only index).
    wrapped: set[tuple[int, str]] = field(default_factory=set)  # every (data key, fingerprint) ever wrapped
    known_versions: set[tuple[str, str, int]] = field(default_factory=set)  # account, handle, version recorded
    # contained transactions: first seq -> {seq, signer, rule, acknowledged_by} (audit/contain.py)
    violations: dict[str, dict[str, Any]] = field(default_factory=dict)
    # transactions to skip while replaying (first seq -> (event, signer, rule)) and the clock bound
    review_items: dict[int, list[int]] = field(default_factory=dict)  # review -> grants live at its start
    request_reasons: dict[int, str] = field(default_factory=dict)  # request -> text_digest of its signed reason
    _contain: dict[int, tuple[int, str, str]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _not_after: str | None = field(default=None, init=False, repr=False, compare=False)
    # (transaction, actor, "init" or the recovered admin's key) while init or a recovery is replayed
    _boot: tuple[str, str, str] | None = field(default=None, init=False, repr=False, compare=False)
    # what this transaction did so far: approvals by its actor, accounts it set a new value of
    _tx: dict[str, set[Any]] = field(default_factory=dict, init=False, repr=False, compare=False)
    # account -> its grants, built on first use (grants are only ever added; ends change in place)
    _by_account: dict[str, list[Grant]] | None = field(default=None, init=False, repr=False, compare=False)

    def _grants_of(self, account: str) -> list[Grant]:
        if self._by_account is None:
            index: dict[str, list[Grant]] = {}
            for grant in self.grants.values():
                index.setdefault(grant.account, []).append(grant)
            self._by_account = index
        return self._by_account.get(account, [])

    # -- questions ------------------------------------------------------------------------

    def person_key(self, handle: str) -> Key | None:
        person = self.people.get(handle)
        return None if person is None or person.key is None else self.keys.get(person.key)

    def active_admins(self) -> list[str]:
        return sorted(h for h, p in self.people.items() if p.role == "admin" and p.status == "active" and p.key)

    def live_grant(self, account: str, handle: str, ts: str) -> Grant | None:
        for grant in self._grants_of(account):
            if grant.handle == handle and grant.live_at(ts):
                return grant
        return None

    def live_holders(self, account: str, ts: str) -> list[str]:
        """Active, enrolled, non-auditor people with a live grant of ``account`` at ``ts``."""
        out = set()
        for grant in self._grants_of(account):
            if grant.live_at(ts):
                person = self.people.get(grant.handle)
                if person is not None and person.status == "active" and person.role != "auditor" and person.key:
                    out.add(grant.handle)
        return sorted(out)

    def may_receive(self, account: str, ts: str) -> set[str]:
        """Key fingerprints a data key of ``account`` may be wrapped to at ``ts``."""
        allowed = {self.recovery_fingerprint} if self.recovery_fingerprint else set()
        for handle in set(self.active_admins()) | set(self.live_holders(account, ts)):
            key = self.people[handle].key
            if key is not None:
                allowed.add(key)
        return allowed

    def may_use(self, account: str, handle: str, ts: str) -> bool:
        person = self.people.get(handle)
        if person is None or person.status != "active" or person.role == "auditor":
            return False
        return person.role == "admin" or self.live_grant(account, handle, ts) is not None

    def admins_at(self, ts: str) -> list[str]:
        return sorted(
            handle
            for handle, person in self.people.items()
            if any(s is not None and s <= ts and (e is None or ts < e) for s, e in person.admin_periods)
        )

    def version(self, account: str, number: int) -> Version | None:
        return self.versions.get(account, {}).get(number)

    # -- replay ---------------------------------------------------------------------------

    def apply_transaction(self, events: list[EventRecord], seal: SealRecord) -> bytes:
        """Apply one verified-link transaction; return the Ed25519 key its seal must verify with.

        Raises :class:`ChainError` at the first event that breaks a rule: a
        :class:`RuleViolation` naming the owner of the seal's key when the log already knew
        that key (the transaction is attributable: its signature, checked later, is that
        person's; a verifier may contain it, audit/contain.py). A seal under a key the log
        does not know is a chain break. On error the state may be partly updated: callers
        discard it (a client never saves it). A transaction this state was told to contain is
        skipped: its seal is still checked, with the key's owner's public key.
        """
        first = events[0].seq
        if first in self._contain:
            return self._skip(events, seal)
        known = self.keys.get(seal.key)
        try:
            return self._apply_transaction(events, seal)
        except RuleViolation as violation:
            if known is None:
                raise ChainError(violation.rule, violation.seq) from None
            violation.first, violation.signer = first, known.owner
            raise

    def _skip(self, events: list[EventRecord], seal: SealRecord) -> bytes:
        """A contained transaction: named (signer, event, rule) and left out of the state."""
        key = self.keys.get(seal.key)
        if key is None:
            raise ChainError(f"seal is signed by unknown key {seal.key} of {seal.signer}", events[0].seq)
        seq, signer, rule = self._contain[events[0].seq]
        self.violations[str(events[0].seq)] = {"seq": seq, "signer": signer, "rule": rule, "acknowledged_by": None}
        self.seq, self.head = events[-1].seq, events[-1].hash
        return key.ed25519

    def contain(self, violations: dict[int, tuple[int, str, str]], not_after: str | None) -> None:
        """Skip these transactions (first seq -> (event, signer, rule)); refuse times after ``not_after``.

        ``not_after`` is the verifying client's clock plus the allowed skew (the caller's, so
        that this module stays pure): an event dated later breaks a rule (issue 19).
        """
        self._contain = dict(violations)
        self._not_after = not_after

    def _check_time(self, ts: str, seq: int) -> None:
        """Never before the previous event, nor more than the skew ahead of the verifier's clock."""
        if not _is_time(ts) or ts < self.last_ts:
            raise RuleViolation(f"its time {ts} goes back before the previous event's {self.last_ts}", seq)
        if self._not_after is not None and ts > self._not_after:
            skew = MAX_SKEW_S // 60
            raise RuleViolation(f"its time {ts} is more than {skew} minutes ahead of the verifier's clock", seq)

    def _apply_transaction(self, events: list[EventRecord], seal: SealRecord) -> bytes:
        known_before = seal.key in self.keys
        self._boot = None
        self._tx = {}
        self._check_time(seal.ts, events[0].seq)
        self.last_ts = seal.ts
        for event in events:
            try:
                if event.actor != seal.signer:
                    raise RuleBroken(f"its actor {event.actor} is not the transaction's signer {seal.signer}")
                if event.ts != seal.ts:
                    raise RuleBroken("its time is not its transaction's time")
                self._apply(event, timed=True)
            except RuleBroken as broken:
                raise RuleViolation(str(broken), event.seq) from None
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError, IndexError):
                raise RuleViolation(f"{event.action} carries malformed data", event.seq) from None
            self.seq, self.head = event.seq, event.hash
        if self._tx.get("over_cap"):
            raise RuleViolation("a grant over the holder cap without an admin's recorded reason", events[0].seq)
        if not self._tx.get("needs_renewal", set()) <= self._tx.get("renewed", set()):
            raise RuleViolation("offboarding steps closed by someone who did not rotate their account", events[0].seq)
        key = self.keys.get(seal.key)
        if key is None:
            raise ChainError(f"seal is signed by unknown key {seal.key} of {seal.signer}", events[0].seq)
        if key.owner != seal.signer:
            raise RuleViolation(f"seal names {seal.signer} but is signed with {key.owner}'s key", events[0].seq)
        if not known_before:
            # A key may sign the transaction that introduced it only when that transaction
            # is an introduction the rules accepted: init, an enrolment, a recovery.
            introduced_by = {e.action for e in events}
            if not introduced_by & {"vault.initialised", "staff.enrolled", "vault.recovered"}:
                raise ChainError(
                    "seal is signed by a key the transaction did not legitimately introduce", events[0].seq
                )
        person = self.people.get(seal.signer)
        if person is None or person.key != seal.key:
            raise RuleViolation(f"seal is signed with a key {seal.signer} does not hold", events[0].seq)
        return key.ed25519

    def begin_own(self) -> None:
        """A transaction of this client's starts (see :meth:`apply_own`)."""
        self._boot = None
        self._tx = {}

    def apply_own(self, event: EventRecord) -> None:
        """Apply an event this client is appending, so later decisions of the same transaction
        see it; an event that breaks a rule is refused before it is ever committed."""
        try:
            self._apply(event)
        except RuleBroken as broken:
            raise ChainError(f"refusing to write an event that breaks a rule of the log: {broken}", event.seq) from None
        self.seq, self.head = event.seq, event.hash

    def _apply(self, event: EventRecord, *, timed: bool = False) -> None:
        """Apply one event; ``timed`` when its transaction's time was already checked."""
        action = event.action
        if not timed:
            if not _is_time(event.ts) or event.ts < self.last_ts:
                raise RuleBroken(f"its time {event.ts} goes back before the previous event's {self.last_ts}")
            self.last_ts = event.ts
        if event.reason is not None and len(event.reason) > MAX_REASON_CHARS:
            raise RuleBroken(f"its reason is longer than {MAX_REASON_CHARS} characters")
        handler = _HANDLERS.get(action)
        # Most events (reveals above all) change nothing but are checked against the actor's
        # rights; their data is covered by the chain and need not be parsed (the hot path).
        needs_data = handler is not None or action in ("vault.initialised", "vault.recovered", "access.granted")
        data = _strict_object(event.data) if needs_data else {}
        if self.vault_id is None:
            if action != "vault.initialised" or event.seq != 1:
                raise RuleBroken("the log must start with vault.initialised")
            self._init(event, data)
            return
        if action == "vault.initialised":
            raise RuleBroken("a second vault.initialised")
        if action == "vault.recovered":
            self._recovered(event, data)
            return
        self._authorise(event, data)
        if handler is not None:
            handler(self, event, data)

    def _authorise(self, event: EventRecord, data: dict[str, Any]) -> None:
        action = event.action
        actor = self.people.get(event.actor)
        rule = _rule_of(action)
        if action == "staff.enrolled":
            return  # checked by its handler (code signature, or the recovery/init transaction)
        if action == "staff.added" and self._bootstrapping(event) is not None:
            if event.subject != event.actor or data.get("role") != "admin":
                raise RuleBroken("init or a recovery may only add its own admin")
            return
        if actor is None or actor.status != "active":
            raise RuleBroken(f"{event.actor} acted without being an active person")
        _check_role(rule, event, actor)
        is_admin = actor.role == "admin"
        account = event.account or ""
        if is_admin and action not in _DECISIONS:
            return  # the hot path: an active admin may do everything but decide their own request
        if action in ADMIN_ACTIONS and not is_admin:
            raise RuleBroken(f"{action} by {event.actor}, who was not an admin")
        owner = self.accounts[account].owner if account in self.accounts else None
        if action in OWNER_ACTIONS and not is_admin and owner != event.actor:
            raise RuleBroken(f"{action} by {event.actor}, not an admin or the owner")
        if action == "access.granted" and not is_admin and (data.get("request") is None or owner != event.actor):
            raise RuleBroken(f"access granted by {event.actor}, not an admin or the owner")
        if action in ("access.approved", "access.denied") and event.subject == event.actor:
            raise RuleBroken(f"{event.actor} decided their own request")
        if action in HOLDER_ACTIONS and not self.may_use(account, event.actor, event.ts):
            raise RuleBroken(f"{action} on {account} by {event.actor}, who neither held it nor was an admin")
        if action == "key.wrapped" and not is_admin and data.get("as") != "recovery":
            raise RuleBroken(f"key.wrapped by {event.actor}, who was not an admin")
        if action == "key.created" and not self.may_use(account, event.actor, event.ts):
            raise RuleBroken(f"key.created on {account} by {event.actor}, who neither held it nor was an admin")

    # -- introductions --------------------------------------------------------------------

    def _init(self, event: EventRecord, data: dict[str, Any]) -> None:
        recovery = data["recovery_key"]
        self.vault_id = str(data["vault_id"])
        self.org = str(data.get("org"))
        self.genesis = event.hash
        self.recovery_x25519 = _unb64(recovery["x25519"])
        self.recovery_ed25519 = _unb64(recovery["ed25519"])
        self.recovery_fingerprint = RecoveryKey.fingerprint_of(self.recovery_x25519)
        if self.recovery_fingerprint != recovery["fingerprint"]:
            raise RuleBroken("the recovery key's fingerprint does not match its public key")
        self._boot = (event.tx, event.actor, "init")

    def _recovered(self, event: EventRecord, data: dict[str, Any]) -> None:
        admin = str(event.subject)
        if event.actor != admin or admin in self.people:
            raise RuleBroken("a recovery must create a new admin who signs it")
        try:
            assert self.vault_id is not None
            assert self.recovery_ed25519 is not None
            message = recovery_message(self.vault_id, event.tx, admin, str(data["admin_key"]))
            verify_signature(self.recovery_ed25519, message, _unb64(data["signature"]))
        except (IntegrityError, ValueError):
            raise RuleBroken("a recovery not signed by this vault's recovery key") from None
        self._boot = (event.tx, admin, str(data["admin_key"]))

    def _bootstrapping(self, event: EventRecord) -> tuple[str, str] | None:
        """``(handle, expected key or 'init')`` when ``event`` is inside init or a recovery."""
        boot = self._boot
        if boot is None or boot[0] != event.tx or boot[1] != event.actor:
            return None
        return boot[1], boot[2]

    def _on_staff_added(self, event: EventRecord, data: dict[str, Any]) -> None:
        handle = str(event.subject)
        if handle in self.people:
            raise RuleBroken(f"{handle} already exists")
        role = str(data["role"])
        if role not in ("member", "manager", "admin", "auditor"):
            raise RuleBroken(f"unknown role {role!r}")
        email = data.get("email")
        self.people[handle] = Person(
            handle=handle, role=role, status="invited", email=email if isinstance(email, str) else None
        )

    def _on_staff_invited(self, event: EventRecord, data: dict[str, Any]) -> None:
        person = self.people[str(event.subject)]
        if person.status != "invited":
            raise RuleBroken(f"{person.handle} is {person.status}, not waiting to enrol")
        person.invite_key = _unb64(data["enrol_key"])
        if len(person.invite_key) != 32:
            raise RuleBroken("the invitation's enrolment key is malformed")
        person.invite_expires = iso_to_ts(data["expires_at"])

    def _on_staff_enrolled(self, event: EventRecord, data: dict[str, Any]) -> None:
        handle = str(event.subject)
        person = self.people.get(handle)
        if person is None or person.status != "invited" or event.actor != handle:
            raise RuleBroken(f"enrolment of {handle} that was not waiting for one")
        public = data["public_keys"]
        keys = PublicKeys(x25519=_unb64(public["x25519"]), ed25519=_unb64(public["ed25519"]))
        if len(keys.x25519) != 32 or len(keys.ed25519) != 32:
            raise RuleBroken("malformed public keys")
        fingerprint = keys.fingerprint
        if fingerprint != public["fingerprint"]:
            raise RuleBroken("the key fingerprint does not match the public keys")
        if fingerprint in self.keys or fingerprint == self.recovery_fingerprint:
            raise RuleBroken(f"key {fingerprint} already belongs to someone")
        boot = self._bootstrapping(event)
        if boot is not None:
            if boot[1] not in ("init", fingerprint) or person.role != "admin":
                raise RuleBroken(f"the key of {handle} is not the one the recovery signed")
        else:
            if person.invite_key is None:
                raise RuleBroken(f"{handle} has no open invitation")
            if person.invite_expires is not None and event.ts > person.invite_expires:
                raise RuleBroken(f"{handle} enrolled after the invitation expired")
            assert self.vault_id is not None
            try:
                verify_signature(
                    person.invite_key,
                    enrolment_message(self.vault_id, handle, fingerprint),
                    _unb64(data["code_signature"]),
                )
            except (IntegrityError, KeyError, ValueError):
                raise RuleBroken(f"the enrolment of {handle} is not signed with its invitation's code") from None
        self.keys[fingerprint] = Key(owner=handle, x25519=keys.x25519, ed25519=keys.ed25519)
        was_admin = self._is_admin(person)
        person.key = fingerprint
        person.status = "active"
        person.invite_key = None
        self._admin_edge(person, was_admin, event.ts)

    # -- people ---------------------------------------------------------------------------

    @staticmethod
    def _is_admin(person: Person) -> bool:
        return person.role == "admin" and person.status == "active"

    def _admin_edge(self, person: Person, was_admin: bool, ts: str) -> None:
        is_admin = self._is_admin(person)
        if is_admin and not was_admin:
            person.admin_periods.append([ts, None])
        elif was_admin and not is_admin and person.admin_periods:
            person.admin_periods[-1][1] = ts

    def _on_staff_role_changed(self, event: EventRecord, data: dict[str, Any]) -> None:
        person = self.people[str(event.subject)]
        role = str(data["to"])
        if role not in ("member", "manager", "admin", "auditor") or person.role != data["from"]:
            raise RuleBroken("a role change that does not follow from the log")
        was_admin = self._is_admin(person)
        person.role = role
        self._admin_edge(person, was_admin, event.ts)

    def _on_staff_offboarded(self, event: EventRecord, _data: dict[str, Any]) -> None:
        person = self.people[str(event.subject)]
        was_admin = self._is_admin(person)
        person.status = "offboarded"
        person.invite_key = None
        self._admin_edge(person, was_admin, event.ts)

    def _on_staff_passphrase_changed(self, event: EventRecord, data: dict[str, Any]) -> None:
        """``govern passwd``: only the person themselves, about the key the log gives them.

        The public keys stay those of the enrolment (a key never enters the log this way) and
        the event carries no key material: the fingerprint, the new Argon2id parameters and a
        digest of the new blob, which from now on is the only blob of this key a client opens
        (an older one put back in the database is an integrity failure, not a way back to the
        old passphrase).
        """
        handle = str(event.subject)
        person = self.people.get(handle)
        if person is None or event.actor != handle:
            raise RuleBroken(f"a passphrase change of {handle} by {event.actor}, not the person themselves")
        if set(data) != {"key", "kdf", "sealed"} or data["key"] != person.key or person.key is None:
            raise RuleBroken(f"a passphrase change of {handle} that does not name their current key alone")
        kdf, sealed = data["kdf"], data["sealed"]
        if not isinstance(kdf, dict) or set(kdf) != {"m", "t", "p"} or not all(type(v) is int for v in kdf.values()):
            raise RuleBroken("a passphrase change with malformed Argon2id parameters")
        if not isinstance(sealed, str) or re.fullmatch(r"[0-9a-f]{64}", sealed) is None:
            raise RuleBroken("a passphrase change with a malformed blob digest")
        person.sealed = sealed

    # -- accounts and grants --------------------------------------------------------------

    def _on_account_added(self, event: EventRecord, data: dict[str, Any]) -> None:
        slug = str(event.account)
        if slug in self.accounts:
            raise RuleBroken(f"account {slug} already exists")
        owner = data.get("owner")
        if owner is not None and owner not in self.people:
            raise RuleBroken(f"owner {owner} is not a person")
        self.accounts[slug] = Account(
            slug=slug,
            owner=owner,
            max_holders=int(data["max_holders"]),
            rotate_every=data.get("rotate_every"),
            platform=str(data["platform"]),
        )
        self.versions.setdefault(slug, {})

    def _on_account_updated(self, event: EventRecord, data: dict[str, Any]) -> None:
        account = self.accounts[str(event.account)]
        for name, change in data.get("changes", {}).items():
            new = change[1]
            if name == "owner":
                if new is not None and new not in self.people:
                    raise RuleBroken(f"owner {new} is not a person")
                account.owner = new
            elif name == "max_holders":
                account.max_holders = int(new)
            elif name == "rotate_every":
                account.rotate_every = new
            elif name == "platform":
                account.platform = str(new)

    def _on_access_granted(self, event: EventRecord, data: dict[str, Any]) -> None:
        slug, handle = str(event.account), str(event.subject)
        if slug not in self.accounts or handle not in self.people:
            raise RuleBroken("a grant of an unknown account or person")
        grant_id = int(data["grant"])
        if grant_id in self.grants:
            raise RuleBroken(f"grant {grant_id} already exists")
        self._by_account = None
        self.grants[grant_id] = Grant(
            id=grant_id,
            account=slug,
            handle=handle,
            start=event.ts,
            until=iso_to_ts(data.get("until")),
            reason=event.reason,
            by=event.actor,
            request=data.get("request"),
        )
        recipient = str(data["recipient"]) if data.get("recipient") is not None else None
        if recipient is not None and recipient != self.people[handle].key:
            raise RuleBroken(f"a key of {slug} wrapped to {recipient}, which is not {handle}'s key")
        for key_id in data.get("data_keys", []):
            self._wrap(int(key_id), str(recipient), slug, event.ts)
        person = self.people[handle]
        if person.status != "active" or person.role == "auditor":
            raise RuleBroken(f"{handle} is {person.status} {person.role} and may not hold a credential")
        request = data.get("request")
        if request is not None:
            asked = self.requests.get(int(request))
            if int(request) not in self._tx.get("approved", set()) or asked is None or asked[:2] != [slug, handle]:
                raise RuleBroken(f"a grant that names request {request}, which this transaction did not approve")
        holders = [h for h in self.live_holders(slug, event.ts) if h != handle]
        if len(holders) >= self.accounts[slug].max_holders:
            # Over the cap only by an admin, who says why in the same transaction.
            if self.people[event.actor].role != "admin":
                raise RuleBroken(f"{slug} is at its cap of {self.accounts[slug].max_holders} holders")
            self._tx.setdefault("over_cap", set()).add((slug, handle))
        # A holder may read these versions now (issue 11): not an exposure while they hold it.
        for number, kind in data.get("exposures_cleared", []):
            version = self.versions[slug][int(number)]
            mark = (slug, int(number), handle, str(kind))
            if mark not in self.exposures or (version.data_key, person.key) not in self.wraps:
                raise RuleBroken(f"a grant clears an exposure of {handle} to {slug} that it does not make readable")
            self.exposures.discard(mark)

    def _on_access_extended(self, event: EventRecord, data: dict[str, Any]) -> None:
        """A live time-boxed grant ends later: an admin, or the account's owner who holds it."""
        slug, handle = str(event.account), str(event.subject)
        grant = self.grants[int(data["grant"])]
        if (grant.account, grant.handle) != (slug, handle) or grant.expired or not grant.live_at(event.ts):
            raise RuleBroken(f"an extension of grant {grant.id}, which is not a live grant of {handle} on {slug}")
        if self.people[event.actor].role != "admin" and (
            self.accounts[slug].owner != event.actor
            or event.actor == handle
            or self.live_grant(slug, event.actor, event.ts) is None
        ):
            raise RuleBroken(f"{event.actor} extended a grant of {slug}: not an admin or its owner holding it")
        until = iso_to_ts(data["until"])
        if not _is_time(until) or grant.until is None or str(until) <= grant.until:
            raise RuleBroken(f"an extension of grant {grant.id} that does not move its end later")
        grant.until = until

    def _on_access_over_cap(self, event: EventRecord, _data: dict[str, Any]) -> None:
        self._tx.setdefault("over_cap", set()).discard((str(event.account), str(event.subject)))

    def _on_access_revoked(self, event: EventRecord, data: dict[str, Any]) -> None:
        for grant_id in data["grants"]:
            self.grants[int(grant_id)].revoked = event.ts

    def _on_access_expired(self, event: EventRecord, data: dict[str, Any]) -> None:
        grant = self.grants[int(data["grant"])]
        if grant.until is None or grant.until > event.ts:
            raise RuleBroken(f"grant {grant.id} marked expired before its end")
        grant.expired = event.ts

    def _on_access_requested(self, event: EventRecord, data: dict[str, Any]) -> None:
        request = int(data["request"])
        slug = str(event.account)
        if request in self.requests or slug not in self.accounts:
            raise RuleBroken(f"request {request} already exists, or names an unknown account")
        if event.subject != event.actor or self.people[event.actor].role == "auditor":
            raise RuleBroken("a request made for someone else, or by an auditor")
        self.requests[request] = [slug, event.actor, "pending"]
        self.request_reasons[request] = text_digest(event.reason or "")

    def _decide(self, event: EventRecord, data: dict[str, Any], status: str) -> int:
        request = int(data["request"])
        asked = self.requests.get(request)
        if asked is None or asked[2] != "pending" or asked[:2] != [str(event.account), str(event.subject)]:
            raise RuleBroken(f"request {request} is not pending for {event.subject} on {event.account}")
        asked[2] = status
        return request

    def _on_access_approved(self, event: EventRecord, data: dict[str, Any]) -> None:
        self._tx.setdefault("approved", set()).add(self._decide(event, data, "approved"))

    def _on_access_denied(self, event: EventRecord, data: dict[str, Any]) -> None:
        self._decide(event, data, "denied")

    def _on_access_cancelled(self, event: EventRecord, data: dict[str, Any]) -> None:
        self._decide(event, data, "cancelled")

    def _on_access_withdrawn(self, event: EventRecord, data: dict[str, Any]) -> None:
        asked = self.requests.get(int(data["request"]))
        if asked is None or asked[1] != event.actor:
            raise RuleBroken("only the requester may withdraw a request")
        self._decide(event, data, "withdrawn")

    def _on_access_recorded(self, event: EventRecord, data: dict[str, Any]) -> None:
        slug, number = str(event.account), int(data["version"])
        if self.version(slug, number) is None or str(event.subject) not in self.people:
            raise RuleBroken(f"a knowledge record of version {number} of {slug}, which does not exist")
        self.knowledge.add((slug, str(event.subject)))
        self.known_versions.add((slug, str(event.subject), number))

    # -- keys and versions ----------------------------------------------------------------

    def _wrap(self, key_id: int, fingerprint: str, slug: str, ts: str) -> None:
        data_key = self.data_keys.get(key_id)
        if data_key is None or data_key.account != slug:
            raise RuleBroken(f"data key {key_id} is not a key of {slug}")
        if fingerprint not in self.may_receive(slug, ts):
            raise RuleBroken(f"data key {key_id} of {slug} wrapped to {fingerprint}, who may not hold it")
        self.wraps.add((key_id, fingerprint))
        self.wrapped.add((key_id, fingerprint))

    def _on_key_created(self, event: EventRecord, data: dict[str, Any]) -> None:
        slug = str(event.account)
        key_id = int(data["data_key"])
        if slug not in self.accounts or key_id in self.data_keys:
            raise RuleBroken(f"data key {key_id} created twice or for an unknown account")
        kcv = data.get("kcv")
        if not isinstance(kcv, str) or len(kcv) != 32:
            raise RuleBroken("a data key without a key-check value")
        self.data_keys[key_id] = DataKey(id=key_id, account=slug, kcv=kcv)
        recipients = [str(f) for f in data["recipients"]]
        custodians = {self.recovery_fingerprint} | {self.people[h].key for h in self.active_admins()}
        if not custodians <= set(recipients):
            raise RuleBroken(f"data key {key_id} is not wrapped to the recovery key and every admin")
        for fingerprint in recipients:
            self._wrap(key_id, fingerprint, slug, event.ts)

    def _on_key_wrapped(self, event: EventRecord, data: dict[str, Any]) -> None:
        recipient = str(data["recipient"])
        if self.people.get(str(event.subject)) is None or self.people[str(event.subject)].key != recipient:
            raise RuleBroken(f"a wrap to {recipient}, which is not {event.subject}'s key")
        self._wrap(int(data["data_key"]), recipient, str(event.account), event.ts)

    def _removed(self, data: dict[str, Any]) -> None:
        for key_id, fingerprint in data.get("removed", []):
            self.wraps.discard((int(key_id), str(fingerprint)))

    def _custodian_keys(self) -> set[str | None]:
        return {self.recovery_fingerprint} | {self.people[h].key for h in self.active_admins()}

    def _on_key_unwrapped(self, event: EventRecord, data: dict[str, Any]) -> None:
        slug, subject = str(event.account), str(event.subject)
        person = self.people.get(subject)
        if person is None or any(str(fp) != person.key for _k, fp in data.get("removed", [])):
            raise RuleBroken(f"an unwrap of keys that are not {subject}'s")
        if any(self.data_keys[int(k)].account != slug for k, _fp in data.get("removed", [])):
            raise RuleBroken(f"an unwrap of keys that are not {slug}'s")
        if self.people[event.actor].role != "admin" and (
            self._is_admin(person) or self.live_grant(slug, subject, event.ts) is not None
        ):
            raise RuleBroken(f"{event.actor} took {subject}'s keys of {slug}, who still holds it")
        self._removed(data)
        known = set(self.known_secrets(slug, subject))
        for mark in data.get("exposed", []):
            if (str(mark["kind"]), int(mark["version"])) not in known:
                raise RuleBroken(f"key.unwrapped marks {subject} exposed to {mark['kind']} of {slug} version"
                                 f" {mark['version']}, which the log does not say they may know")  # fmt: skip
            self.exposures.add((slug, int(mark["version"]), subject, str(mark["kind"])))
        unmarked = self.unmarked_exposure(slug, subject)
        if unmarked:
            kind, number = unmarked[0]
            raise RuleBroken(
                f"key.unwrapped leaves {subject}'s knowledge of {kind} of {slug} version {number} unmarked:"
                " its exposed list is not the one the log gives"
            )

    def _on_key_retired(self, event: EventRecord, data: dict[str, Any]) -> None:
        slug = str(event.account)
        if self.people[event.actor].role != "admin" and not self.may_use(slug, event.actor, event.ts):
            raise RuleBroken(f"key.retired on {slug} by {event.actor}, who neither held it nor was an admin")
        current = int(data["current"])
        keys = [int(k) for k in data.get("data_keys", [])] + [current]
        if any(k not in self.data_keys or self.data_keys[k].account != slug for k in keys):
            raise RuleBroken(f"key.retired names keys that are not {slug}'s")
        allowed = self.may_receive(slug, event.ts)
        custodians = self._custodian_keys()
        retiring = {int(k) for k in data.get("data_keys", [])}
        for key_id, fingerprint in data.get("removed", []):
            if int(key_id) not in retiring | {current}:
                raise RuleBroken(f"key.retired removes a wrap of data key {key_id}, which it does not retire")
            if fingerprint in custodians or (int(key_id) == current and fingerprint in allowed):
                raise RuleBroken(f"key.retired removes the wrap of {fingerprint}, who must keep it")
        self._removed(data)
        for key_id in data.get("data_keys", []):
            self.data_keys[int(key_id)].retired = True

    def _new_version(self, event: EventRecord, data: dict[str, Any], number: int, status: str, how: str) -> Version:
        slug = str(event.account)
        content = data["content"]
        key_id = int(content["data_key"])
        data_key = self.data_keys.get(key_id)
        if data_key is None or data_key.account != slug or data_key.retired:
            raise RuleBroken(f"version {number} of {slug} is sealed under a key that is not a live key of it")
        if content["kcv"] != data_key.kcv:
            raise RuleBroken(f"version {number} of {slug} commits to another data key")
        versions = self.versions.setdefault(slug, {})
        if number in versions or number != max(versions, default=0) + 1:
            raise RuleBroken(f"version {number} of {slug} is out of sequence")
        version = Version(
            account=slug,
            number=number,
            data_key=key_id,
            sealed=str(content["sealed"]),
            fields=[str(f) for f in data["fields"]],
            changed=[str(f) for f in data.get("fields_changed", [])],
            status=status,
            at=event.ts,
            by=event.actor,
            how=how,
            created=event.ts,
        )
        versions[number] = version
        return version

    def _supersede_current(self, slug: str, ts: str = "") -> None:
        for version in self.versions.get(slug, {}).values():
            if version.status == "current":
                version.status = "superseded"
                version.superseded = ts

    def _clear(self, slug: str, kinds: set[str], number: int) -> None:
        self.exposures = {e for e in self.exposures if not (e[0] == slug and e[3] in kinds and e[1] < number)}

    def _on_secret_set(self, event: EventRecord, data: dict[str, Any]) -> None:
        slug = str(event.account)
        self._supersede_current(slug, event.ts)
        version = self._new_version(event, data, int(data["version"]), "current", "secret set")
        self._clear(slug, {KINDS[f] for f in version.changed if f in KINDS}, version.number)
        self._tx.setdefault("renewed", set()).add(slug)

    def _on_rotation_started(self, event: EventRecord, data: dict[str, Any]) -> None:
        slug = str(event.account)
        if any(v.status == "pending" for v in self.versions.get(slug, {}).values()):
            raise RuleBroken(f"a second pending rotation of {slug}")
        data = {**data, "fields_changed": ["password"]}
        version = self._new_version(event, data, int(data["pending_version"]), "pending", "rotation")
        if int(data["rotation"]) in self.rotations:
            raise RuleBroken(f"rotation {data['rotation']} already exists")
        self.rotations[int(data["rotation"])] = [slug, str(version.number), "pending"]

    def _on_rotation_confirmed(self, event: EventRecord, data: dict[str, Any]) -> None:
        slug = str(event.account)
        version = self.versions[slug][int(data["version"])]
        rotation = self.rotations.get(int(data["rotation"]))
        if version.status != "pending" or rotation != [slug, str(version.number), "pending"]:
            raise RuleBroken(f"confirmation of a rotation of {slug} that is not pending")
        self._supersede_current(slug, event.ts)
        version.status = "current"
        version.at, version.by = event.ts, event.actor
        rotation[2] = "confirmed"
        self._clear(slug, {"password"}, version.number)
        self._tx.setdefault("renewed", set()).add(slug)

    def _on_rotation_aborted(self, event: EventRecord, data: dict[str, Any]) -> None:
        slug = str(event.account)
        rotation = self.rotations.get(int(data["rotation"]))
        version = self.versions[slug][int(data["version"])]
        key_id = int(data["data_key"])
        if rotation is None or rotation != [slug, str(version.number), "pending"] or version.status != "pending":
            raise RuleBroken(f"an abort of a rotation of {slug} that is not pending")
        if version.data_key != key_id or any(int(k) != key_id for k, _fp in data.get("removed", [])):
            raise RuleBroken("an abort that removes keys other than the pending version's")
        version.status = "aborted"
        rotation[2] = "aborted"
        self.data_keys[key_id].retired = True
        self._removed(data)

    def _on_secret_denied(self, event: EventRecord, data: dict[str, Any]) -> None:
        # A refused reveal: any enrolled, active person may record their own (and only that).
        person = self.people[event.actor]
        if person.key is None or event.subject not in (None, event.actor) or str(event.account) not in self.accounts:
            raise RuleBroken(f"secret.denied by {event.actor} that is not their own attempt on a known account")
        if str(data["why"]) not in DENIALS or not isinstance(data["field"], str) or len(data["field"]) > 64:
            raise RuleBroken(f"secret.denied with an unknown reason {data['why']!r}")

    def _on_secret_destroyed(self, event: EventRecord, data: dict[str, Any]) -> None:
        version = self.versions[str(event.account)][int(data["version"])]
        if version.status != "superseded":
            raise RuleBroken(f"destruction of version {version.number}, which is {version.status}")
        if version.superseded and event.ts < retention_end(version.superseded):
            raise RuleBroken(
                f"destruction of version {version.number} of {event.account} before its retention ends"
                f" ({retention_end(version.superseded)})"
            )
        version.status = "destroyed"

    # -- policy, reviews, offboarding -----------------------------------------------------

    def _on_policy_published(self, _event: EventRecord, data: dict[str, Any]) -> None:
        self.policies[str(data["version"])] = str(data["sha256"])

    def _on_policy_acknowledged(self, event: EventRecord, data: dict[str, Any]) -> None:
        version = str(data["version"])
        if self.policies.get(version) != data["sha256"] or event.subject != event.actor:
            raise RuleBroken("an acknowledgement of a policy that was not published, or for someone else")
        self.acks.add((version, str(event.subject)))

    def review_grants(self, ts: str) -> list[int]:
        """The grants a review started at ``ts`` covers: every grant live then."""
        return sorted(g.id for g in self.grants.values() if g.live_at(ts) and g.expired is None)

    def undecided_items(self, review: int, ts: str) -> list[int]:
        """Grants of ``review`` still live at ``ts`` that nobody certified or revoked."""
        return [
            grant_id
            for grant_id in self.review_items.get(review, [])
            if f"{review}:{grant_id}" not in self.review_decisions and self.grants[grant_id].live_at(ts)
        ]

    def _on_review_started(self, event: EventRecord, data: dict[str, Any]) -> None:
        review = int(data["review"])
        if review in self.reviews or any(status == "open" for status in self.reviews.values()):
            raise RuleBroken(f"review {review} started twice, or while another is open")
        items = self.review_grants(event.ts)
        if int(data["items"]) != len(items):
            raise RuleBroken(f"review {review} says {data['items']} items but {len(items)} grants were live")
        self.reviews[review] = "open"
        self.review_items[review] = items

    def _review_item(self, event: EventRecord, data: dict[str, Any]) -> str:
        review, grant_id = int(data["review"]), int(data["grant"])
        key = f"{review}:{grant_id}"
        grant = self.grants.get(grant_id)
        if (
            self.reviews.get(review) != "open"
            or grant_id not in self.review_items.get(review, [])
            or grant is None
            or (grant.account, grant.handle) != (str(event.account), str(event.subject))
            or key in self.review_decisions
        ):
            raise RuleBroken(f"a decision on grant {grant_id}, which is not an undecided item of open review {review}")
        return key

    def _on_review_certified(self, event: EventRecord, data: dict[str, Any]) -> None:
        key = self._review_item(event, data)
        if event.subject == event.actor:
            raise RuleBroken(f"{event.actor} certified their own access")
        if self.people[event.actor].role != "admin" and self.accounts[str(event.account)].owner != event.actor:
            raise RuleBroken(f"{event.actor} certified access to {event.account}, which they do not own")
        self.review_decisions[key] = "certified"

    def _on_review_revoked(self, event: EventRecord, data: dict[str, Any]) -> None:
        self.review_decisions[self._review_item(event, data)] = "revoked"

    def _on_review_closed(self, event: EventRecord, data: dict[str, Any]) -> None:
        review = int(data["review"])
        if self.reviews.get(review) != "open":
            raise RuleBroken(f"review {review} closed but it is not open")
        left = self.undecided_items(review, event.ts)
        if left:
            raise RuleBroken(f"review {review} closed with grant {left[0]} live and undecided")
        self.reviews[review] = "closed"

    def _on_offboard_started(self, event: EventRecord, data: dict[str, Any]) -> None:
        case_id = int(data["case"])
        if case_id in self.cases or str(event.subject) not in self.people:
            raise RuleBroken(f"case {case_id} already exists, or names an unknown person")
        plan = {str(n): str(account) for n, _kind, account in data["plan"] if account is not None}
        if len(data["plan"]) != int(data["steps"]):
            raise RuleBroken(f"case {case_id} plans {len(data['plan'])} steps but says {data['steps']}")
        if [int(n) for n, _kind, _account in data["plan"]] != list(range(1, len(data["plan"]) + 1)):
            raise RuleBroken(f"case {case_id} numbers its steps out of order")
        self._check_plan(
            str(event.subject), [(str(kind), None if a is None else str(a)) for _n, kind, a in data["plan"]]
        )
        self.cases[case_id] = Case(
            id=case_id,
            handle=str(event.subject),
            steps=int(data["steps"]),
            deadline=str(data["deadline"]),
            step_accounts=plan,
            step_kinds={str(n): str(kind) for n, kind, _account in data["plan"]},
            titles=str(data.get("titles", "")),
        )

    def _close_step(self, data: dict[str, Any], how: str) -> None:
        case = self.cases[int(data["case"])]
        step = int(data["step"])
        if not 1 <= step <= case.steps or str(step) in case.closed_steps:
            raise RuleBroken(f"step {step} of case {case.id} is not open")
        case.closed_steps[str(step)] = how

    def _on_offboard_step_done(self, _event: EventRecord, data: dict[str, Any]) -> None:
        self._close_step(data, "done")
        case = self.cases[int(data["case"])]
        step = str(int(data["step"]))
        account = case.step_accounts.get(step)
        if case.step_kinds.get(step) == "remove-access" and account is not None:
            unmarked = self.unmarked_exposure(account, case.handle)
            if unmarked:
                raise RuleBroken(
                    f"step {step} of case {case.id} removed {case.handle}'s access to {account} without marking"
                    f" what they may know ({unmarked[0][0]} of version {unmarked[0][1]}) exposed"
                )
        if case.step_kinds and case.step_kinds.get(step) not in AUTOMATIC_STEPS:
            raise RuleBroken(f"step {step} of case {case.id} is not automatic: offboard.step_done does not close it")
        waits_for = {step_kind: kind for kind, step_kind in FOLLOW_UP_STEPS.items()}
        for number in data.get("followups_closed", []):
            kind = waits_for.get(case.step_kinds.get(str(int(number)), ""))
            open_kinds = {e[3] for e in self.exposures if e[0] == account and e[2] == case.handle}
            if kind is None or case.step_accounts.get(str(int(number))) != account or kind in open_kinds:
                raise RuleBroken(f"step {number} of case {case.id} closed while its rotation is still due")
            self._close_step({"case": data["case"], "step": number}, "done")

    def _on_offboard_step_closed(self, event: EventRecord, data: dict[str, Any]) -> None:
        case = self.cases[int(data["case"])]
        step = str(int(data["step"]))
        account = case.step_accounts.get(step)
        if (
            self.people[event.actor].role != "admin"
            and case.step_kinds.get(step) == "manual"
            and account is not None
            and self.accounts[account].owner == event.actor
            and not data.get("automatic")
        ):
            # The account's owner closes the manual platform steps of it (issue 11).
            self._tx.setdefault("owner_closed", set()).add(account)
        elif self.people[event.actor].role != "admin":
            # Anyone's rotation closes the steps that waited for it, in its own transaction
            # (checked when the transaction ends: the step closes before the rotation's event).
            if account is None:
                raise RuleBroken(
                    f"{event.actor} closed step {data['step']} of case {case.id}, which no rotation closes"
                )
            self._tx.setdefault("needs_renewal", set()).add(account)
        self._close_step(data, "done")

    def _on_offboard_step_waived(self, _event: EventRecord, data: dict[str, Any]) -> None:
        self._close_step(data, "waived")

    def _on_offboard_completed(self, event: EventRecord, data: dict[str, Any]) -> None:
        if self.people[event.actor].role != "admin" and not (
            self._tx.get("needs_renewal") or self._tx.get("owner_closed")
        ):
            raise RuleBroken(f"{event.actor} completed an offboarding case without closing its last step")
        case = self.cases[int(data["case"])]
        if len(case.closed_steps) != case.steps:
            raise RuleBroken(f"case {case.id} completed with steps still open")
        case.status = "closed"

    # -- issue 19: what the log itself says a person may know, and what offboarding them is ------
    # The services take exposure and the offboarding plan from here (rows only index them), and
    # the rules check every signed claim about them (``key.unwrapped``'s ``exposed`` list, the
    # plan of ``offboard.started``, a closed remove-access step) against the same computation.

    def keys_of(self, handle: str) -> set[str]:
        """Every key fingerprint that ever belonged to ``handle`` (a key has one owner for ever)."""
        return {fp for fp, key in self.keys.items() if key.owner == handle}

    def _lineage(self, newest_first: list[Version], name: str) -> list[Version]:
        """The versions carrying the current value of field ``name``: newest first, back to its change."""
        out: list[Version] = []
        for version in newest_first:
            if version.status == "pending":
                continue
            if name not in version.fields:
                return out
            out.append(version)
            if name in version.changed:
                break
        return out

    def known_secrets(self, account: str, handle: str) -> list[tuple[str, int]]:
        """``(kind, version)`` pairs of ``account`` whose value ``handle`` may know (govern/exposure.py).

        A kind's current value is known when any version carrying it was sealed under a data
        key ever wrapped to one of their keys, or (the password) when a signed knowledge record
        names one of those versions; a pending password when its key was wrapped to them.
        ``version`` is the one to rotate: the current one, or the pending one.
        """
        versions = sorted(
            (v for v in self.versions.get(account, {}).values() if v.status != "aborted"),
            key=lambda v: v.number,
            reverse=True,
        )
        fingerprints = self.keys_of(handle)
        keys = {key_id for key_id, fp in self.wrapped if fp in fingerprints}
        current = next((v for v in versions if v.status == "current"), None)
        found: list[tuple[str, int]] = []
        if current is not None:
            for name, kind in KINDS.items():
                chain = self._lineage(versions, name)
                if chain and any(v.data_key in keys for v in chain):
                    found.append((kind, current.number))
            if not any(kind == "password" for kind, _n in found):
                recorded = {n for a, h, n in self.known_versions if a == account and h == handle}
                if any(v.number in recorded for v in self._lineage(versions, "password")):
                    found.append(("password", current.number))
        pending = next((v for v in versions if v.status == "pending"), None)
        if pending is not None and pending.data_key in keys and "password" in pending.fields:
            found.append(("password", pending.number))
        return found

    def touched_accounts(self, handle: str) -> list[str]:
        """Every account ``handle`` holds, held, could decrypt or is recorded as knowing."""
        touched = {g.account for g in self.grants.values() if g.handle == handle}
        fingerprints = self.keys_of(handle)
        touched |= {
            self.data_keys[key_id].account
            for key_id, fp in self.wrapped | self.wraps
            if fp in fingerprints and key_id in self.data_keys
        }
        touched |= {a for a, h in self.knowledge if h == handle}
        return sorted(touched)

    def exposure_open(self, account: str, handle: str, kind: str, number: int) -> bool:
        """An uncleared exposure of ``handle`` to the value ``(kind, version number)`` holds."""
        pending = self.versions[account][number].status == "pending"
        for slug, exposed, who, what in self.exposures:
            if (slug, who, what) != (account, handle, kind):
                continue
            version = self.versions[account].get(exposed)
            if version is not None and (exposed == number if pending else version.status != "pending"):
                return True
        return False

    def unmarked_exposure(self, account: str, handle: str) -> list[tuple[str, int]]:
        """What ``handle`` may know of ``account`` that no open exposure records (should be empty)."""
        return [
            (kind, n)
            for kind, n in self.known_secrets(account, handle)
            if not self.exposure_open(account, handle, kind, n)
        ]

    def offboarding_plan(self, handle: str) -> list[tuple[str, str | None]]:
        """The ``(step kind, account)`` steps of offboarding ``handle`` that the log decides.

        In the order ``offboard start`` runs them; the platform's manual steps (one list per
        touched account, from govern's platform rules) are added by the planner and are the
        only other steps a signed plan may carry.
        """
        steps: list[tuple[str, str | None]] = [("suspend", None)]
        if any(r[1] == handle and r[2] == "pending" for r in self.requests.values()):
            steps.append(("cancel-requests", None))
        steps += [("reassign-owner", slug) for slug in sorted(self.accounts) if self.accounts[slug].owner == handle]
        touched = self.touched_accounts(handle)
        steps += [("remove-access", slug) for slug in touched]
        for slug in touched:
            kinds = sorted({kind for kind, _n in self.known_secrets(slug, handle)})
            steps += [(FOLLOW_UP_STEPS[kind], slug) for kind in kinds]
        return steps

    def _check_plan(self, handle: str, plan: list[tuple[str, str | None]]) -> None:
        expected = self.offboarding_plan(handle)
        touched = set(self.touched_accounts(handle))
        decided = [step for step in plan if step[0] != "manual"]
        manual_ok = all(account in touched for kind, account in plan if kind == "manual")
        if decided != expected or not manual_ok:
            missing = [f"{k} {a or ''}".strip() for k, a in expected if (k, a) not in decided]
            extra = [f"{k} {a or ''}".strip() for k, a in decided if (k, a) not in expected]
            raise RuleBroken(
                f"an offboarding plan of {handle} that is not the one the log gives"
                f" (missing: {', '.join(missing) or 'none'}; not due: {', '.join(extra) or 'none'})"
            )

    # -- issue 19: contained transactions ------------------------------------------------------

    def unacknowledged_violations(self) -> list[dict[str, Any]]:
        """Contained transactions no admin has yet recorded a decision about (oldest first)."""
        return [
            {"transaction": int(first), **v}
            for first, v in sorted(self.violations.items(), key=lambda item: int(item[0]))
            if v.get("acknowledged_by") is None
        ]

    def _on_audit_violation_acknowledged(self, event: EventRecord, data: dict[str, Any]) -> None:
        first = str(int(data["transaction"]))
        violation = self.violations.get(first)
        if violation is None or violation.get("acknowledged_by") is not None:
            raise RuleBroken(f"an acknowledgement of transaction {first}, which is not a contained violation")
        if not isinstance(event.reason, str) or not event.reason.strip():
            raise RuleBroken("an acknowledgement of a contained transaction without a reason")
        violation["acknowledged_by"] = event.actor

    # -- serialisation --------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["format"] = STATE_FORMAT
        for name in ("recovery_x25519", "recovery_ed25519"):
            value = getattr(self, name)
            raw[name] = None if value is None else _b64(value)
        raw["keys"] = {fp: {"owner": k.owner, "x25519": _b64(k.x25519), "ed25519": _b64(k.ed25519)}
                       for fp, k in self.keys.items()}  # fmt: skip
        raw["people"] = {
            h: {**asdict(p), "invite_key": None if p.invite_key is None else _b64(p.invite_key)}
            for h, p in self.people.items()
        }
        raw["wraps"] = sorted([list(w) for w in self.wraps])
        raw["exposures"] = sorted([list(e) for e in self.exposures])
        raw["acks"] = sorted([list(a) for a in self.acks])
        raw["knowledge"] = sorted([list(k) for k in self.knowledge])
        raw["wrapped"] = sorted([list(w) for w in self.wrapped])
        raw["known_versions"] = sorted([list(k) for k in self.known_versions])
        raw["versions"] = {slug: {str(n): asdict(v) for n, v in vs.items()} for slug, vs in self.versions.items()}
        raw.pop("_boot", None)
        raw.pop("_tx", None)
        raw.pop("_by_account", None)
        raw.pop("_contain", None)
        raw.pop("_not_after", None)
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LogState:
        if raw.get("format") != STATE_FORMAT:
            raise ValueError("unknown state format")

        def unb(value: Any) -> bytes | None:
            return None if value is None else _unb64(value)

        state = cls(
            vault_id=raw["vault_id"],
            org=raw["org"],
            genesis=raw["genesis"],
            seq=int(raw["seq"]),
            head=str(raw["head"]),
            recovery_fingerprint=raw["recovery_fingerprint"],
            recovery_x25519=unb(raw["recovery_x25519"]),
            recovery_ed25519=unb(raw["recovery_ed25519"]),
            keys={fp: Key(k["owner"], _unb64(k["x25519"]), _unb64(k["ed25519"])) for fp, k in raw["keys"].items()},
            people={h: Person(**{**p, "invite_key": unb(p["invite_key"])}) for h, p in raw["people"].items()},
            accounts={s: Account(**a) for s, a in raw["accounts"].items()},
            grants={int(i): Grant(**g) for i, g in raw["grants"].items()},
            data_keys={int(i): DataKey(**d) for i, d in raw["data_keys"].items()},
            wraps={(int(k), str(f)) for k, f in raw["wraps"]},
            versions={s: {int(n): Version(**v) for n, v in vs.items()} for s, vs in raw["versions"].items()},
            exposures={(str(a), int(v), str(h), str(k)) for a, v, h, k in raw["exposures"]},
            requests={int(i): [str(x) for x in r] for i, r in raw["requests"].items()},
            last_ts=str(raw["last_ts"]),
            rotations={int(i): [str(x) for x in r] for i, r in raw["rotations"].items()},
            policies=dict(raw["policies"]),
            acks={(str(v), str(h)) for v, h in raw["acks"]},
            reviews={int(i): str(s) for i, s in raw["reviews"].items()},
            review_decisions={str(k): str(v) for k, v in raw["review_decisions"].items()},
            knowledge={(str(a), str(h)) for a, h in raw["knowledge"]},
            cases={int(i): Case(**c) for i, c in raw["cases"].items()},
            wrapped={(int(k), str(f)) for k, f in raw["wrapped"]},
            known_versions={(str(a), str(h), int(n)) for a, h, n in raw["known_versions"]},
            violations={str(k): dict(v) for k, v in raw["violations"].items()},
            review_items={int(k): [int(g) for g in v] for k, v in raw["review_items"].items()},
            request_reasons={int(k): str(v) for k, v in raw["request_reasons"].items()},
        )
        return state


_HANDLERS = {
    name[len("_on_") :].replace("_", ".", 1): function
    for name, function in vars(LogState).items()
    if name.startswith("_on_") and callable(function)
}
# Rules an admin is held to too.
_DECISIONS = frozenset({"access.approved", "access.denied"})
