"""Render the audit report in real headless Chromium and check the screenshot is not blank.

Run by `make test-browser` (and CI). Builds a small vault in a temporary folder, writes
`govern audit report`, screenshots it with `chromium --headless --no-sandbox`, and
checks the picture: enough non-background pixels and colours to be a rendered page.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image


def govern(*args: str, who: str = "alice", stdin: str = "") -> str:
    env = {**os.environ, "GOVERN_USER": who, "GOVERN_PASSPHRASE": f"{who} browser passphrase"}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("govern")), *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"govern {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no Chromium found: install Debian's chromium (make test-browser does)")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            {"GOVERN_HOME": str(Path(tmp) / "home"), "GOVERN_KDF": "m=19456,t=2,p=1", "GOVERN_CACHE_TTL": "0"}
        )
        govern("init", "--org", "Acme Corp", "--admin", "alice", "--name", "Alice Admin", "--recovery-file",
               str(Path(tmp) / "recovery"))  # fmt: skip
        for handle in ("bob", "carol"):
            code = govern("staff", "add", handle, "--name", handle.title()).strip()
            govern("staff", "enroll", handle, "--code", code, who=handle)
        for slug, platform in (("x-acme", "x"), ("ig-acme", "instagram"), ("li-acme", "linkedin")):
            govern("account", "add", slug, "--platform", platform, "--handle", "@acme")
            govern("secret", "set", slug, "--password-stdin", stdin=f"{slug}-password-1\n")
        govern("access", "grant", "x-acme", "bob", "--reason", "runs X")
        govern("access", "grant", "ig-acme", "carol", "--reason", "runs IG", "--for", "30d")
        govern("access", "grant", "x-acme", "carol", "--reason", "holiday cover")
        govern("access", "revoke", "x-acme", "carol", "--reason", "cover ended")
        report = Path(tmp) / "report.html"
        govern("audit", "report", "--out", str(report))
        screenshot = Path(tmp) / "report.png"
        subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={Path(tmp) / 'profile'}", "--window-size=1280,1000", "--hide-scrollbars",
             f"--screenshot={screenshot}", report.as_uri()],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        if not screenshot.exists():
            print("browser check: Chromium wrote no screenshot", file=sys.stderr)
            return 1
        image = Image.open(screenshot).convert("RGB")
        width, height = image.size
        histogram = image.getcolors(maxcolors=width * height) or []
        background = max(histogram)[0] if histogram else width * height
        ink = 1 - background / (width * height)
        colours = len(histogram)
        keep = os.environ.get("GOVERN_BROWSER_SCREENSHOT")
        if keep:
            shutil.copy(screenshot, keep)
        print(f"browser check: {width}x{height} screenshot, {colours} colours, {ink:.1%} of pixels not background")
        if colours < 20 or ink < 0.02:
            print("browser check: the rendered report looks blank", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
