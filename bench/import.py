"""Benchmark: `govern import --apply` of a generic CSV of N entries (default 1,000).

Builds a real vault (init), writes a CSV of N X accounts (username, password, TOTP key),
then times the installed `govern import FILE --from csv --apply` in a subprocess (one
unlock, one signed transaction per entry), and `audit verify` after it. Product KDF
parameters unless --fast-kdf. Prints figures; asserts nothing.

    .venv/bin/python bench/import.py [--entries 1000] [--fast-kdf]
"""

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PASSPHRASE = "alice bench passphrase"  # noqa: S105  (a throwaway vault in a temporary folder)
GOVERN = Path(sys.executable).with_name("govern")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--fast-kdf", action="store_true", help="Argon2id at its floor (as the tests run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(root / "home"),
            "GOVERN_HOME": str(root / "govern-home"),
            "GOVERN_DB_URL": f"sqlite:///{root / 'vault.db'}",
            "GOVERN_USER": "alice",
            "GOVERN_PASSPHRASE": PASSPHRASE,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        }
        if args.fast_kdf:
            env["GOVERN_KDF"] = "m=19456,t=2,p=1"
        run = lambda *a: subprocess.run([str(GOVERN), *a], env=env, capture_output=True, text=True, check=True)  # noqa: E731
        run("init", "--org", "Bench", "--admin", "alice", "--name", "Alice", "--recovery-file", str(root / "rk"))
        lines = ["account,platform,handle,username,password,totp"]
        for n in range(args.entries):
            key = base64.b32encode(os.urandom(20)).decode()
            password = base64.urlsafe_b64encode(os.urandom(15)).decode() + "!a1"
            lines.append(f"x-bench-{n:05d},x,@bench{n},bench{n},{password},{key}")
        export = root / "bench.csv"
        export.write_text("\n".join(lines) + "\n")
        start = time.perf_counter()
        run("import", str(export), "--from", "csv")
        dry = time.perf_counter() - start
        start = time.perf_counter()
        run("import", str(export), "--from", "csv", "--apply")
        applied = time.perf_counter() - start
        start = time.perf_counter()
        run("audit", "verify")
        verified = time.perf_counter() - start
        size = (root / "vault.db").stat().st_size
    print(f"entries            {args.entries}")
    print(f"dry run            {dry:.2f} s")
    print(f"import --apply     {applied:.2f} s  ({applied / args.entries * 1000:.1f} ms/entry, one unlock)")
    print(f"audit verify after {verified:.2f} s")
    print(f"vault.db           {size / 1024 / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
