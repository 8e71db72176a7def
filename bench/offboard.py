"""Benchmark: offboard a leaver who holds N grants (default 500), through the real entry point.

Builds a SQLite vault in a temporary folder with the services (one unlock, reused),
then times `govern offboard start` in a subprocess. Prints figures; asserts nothing.

    .venv/bin/python bench/offboard.py [--grants 500] [--kdf default|floor]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from govern.context import Context
from govern.services import access, accounts, secrets, staff, vaultinit
from govern.unlock import PassphraseSource, StdinBroker


class Fixed(PassphraseSource):
    def __init__(self, value: str) -> None:
        super().__init__(StdinBroker())
        self.value = value

    def get(self, prompt: str, *, new: bool = False) -> str:
        return self.value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grants", type=int, default=500)
    parser.add_argument("--kdf", choices=["default", "floor"], default="floor")
    args = parser.parse_args()
    if args.kdf == "floor":
        os.environ["GOVERN_KDF"] = "m=19456,t=2,p=1"
    os.environ["GOVERN_CACHE_TTL"] = "0"
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'vault.db'}"
        alice = Context(db_url=url, actor="alice", passphrase=Fixed("alice bench passphrase"))
        started = time.perf_counter()
        vaultinit.init_vault(alice, org="Bench", admin="alice", name="Alice", email=None, recovery_file=None)
        code = staff.add_person(alice, "bob", name="Bob", email=None, team=None, role="member")["enrolment_code"]
        bob = Context(db_url=url, actor="bob", passphrase=Fixed("bob bench passphrase"))
        staff.enroll(bob, "bob", code)
        for i in range(args.grants):
            slug = f"acct-{i:04d}"
            accounts.add_account(
                alice, slug, platform="x", handle=f"@a{i}", team=None, owner=None, rotate_every=None, max_holders=None
            )
            secrets.set_secret(alice, slug, username=None, password=f"pw-{i}-bench", totp_uri=None, recovery_codes=None)
            access.grant_access(alice, slug, "bob", reason="bench", duration=None)
        built = time.perf_counter() - started
        alice.close()
        bob.close()
        env = {
            **os.environ,
            "GOVERN_DB_URL": url,
            "GOVERN_USER": "alice",
            "GOVERN_PASSPHRASE": "alice bench passphrase",
        }
        govern = Path(sys.executable).with_name("govern")
        started = time.perf_counter()
        result = subprocess.run(
            [str(govern), "offboard", "start", "bob", "--reason", "bench", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - started
        import json

        case = json.loads(result.stdout)
        steps = len(case["steps"])
        size = (Path(tmp) / "vault.db").stat().st_size
    print(f"vault with {args.grants} grants built in {built:.1f} s (Argon2id {args.kdf})")
    print(f"offboard start: {elapsed:.2f} s for {args.grants} grants ({elapsed / args.grants * 1000:.1f} ms a grant)")
    print(
        f"  case {case['case']}: {steps} steps, {case['open_steps']} follow-up steps open; database {size / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
