"""Who signs: an unlocked person, and the vault record (below the context, above the models)."""

from dataclasses import dataclass

from sqlmodel import Session, select

from govern.errors import IntegrityFailure
from govern.models import Person, PersonKey, VaultMeta
from vault import PersonKeys


@dataclass
class Unlocked:
    """An authenticated person with their private keys open. Signs audit seals."""

    person: Person
    key_row: PersonKey
    keys: PersonKeys

    @property
    def handle(self) -> str:
        return self.person.handle

    @property
    def key_fingerprint(self) -> str:
        return self.key_row.fingerprint

    def sign(self, message: bytes) -> bytes:
        return self.keys.sign(message)


def vault_meta(session: Session) -> VaultMeta:
    meta = session.exec(select(VaultMeta)).first()
    if meta is None:
        raise IntegrityFailure("the vault record is missing: this database was not made by 'govern init'")
    return meta
