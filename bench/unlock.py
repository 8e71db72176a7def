"""Benchmarks: Argon2id unlock cost, and `govern --help` start-up against a bare Typer app.

Prints figures; asserts nothing. Run with `make bench` (or `.venv/bin/python bench/unlock.py`).
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from vault import DEFAULT_PARAMS, MINIMUM_PARAMS, KdfParams
from vault.kdf import derive, new_salt

RUNS = int(os.environ.get("BENCH_RUNS", "15"))


def median_seconds(fn: Callable[[], object], runs: int = RUNS) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def kdf(params: KdfParams) -> float:
    salt = new_salt()
    return median_seconds(lambda: derive("a benchmark passphrase", salt, params))


def startup(command: list[str]) -> float:
    return median_seconds(lambda: subprocess.run(command, capture_output=True, check=True))


def main() -> None:
    print(f"Argon2id per unlock, median of {RUNS}:")
    print(f"  default {DEFAULT_PARAMS}: {kdf(DEFAULT_PARAMS) * 1000:7.1f} ms")
    print(f"  floor   {MINIMUM_PARAMS}: {kdf(MINIMUM_PARAMS) * 1000:7.1f} ms")
    govern = Path(sys.executable).with_name("govern")
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare.py"
        bare.write_text(
            "import typer\napp = typer.Typer()\n@app.command()\ndef hello() -> None:\n    pass\n"
            "@app.command()\ndef bye() -> None:\n    pass\napp()\n"
        )
        bare_s = startup([sys.executable, str(bare), "--help"])
        govern_s = startup([str(govern), "--help"])
        python_s = startup([sys.executable, "-c", "pass"])
    print(f"Start-up, median of {RUNS} runs:")
    print(f"  python -c pass        {python_s * 1000:7.1f} ms")
    print(f"  bare Typer app --help {bare_s * 1000:7.1f} ms")
    print(f"  govern --help         {govern_s * 1000:7.1f} ms  ({govern_s / bare_s:.2f}x the bare app)")


if __name__ == "__main__":
    main()
