"""Render the audit reports in real headless Chromium and check they are not blank.

Run by `make test-browser` (and CI). Builds a small vault in a temporary folder, writes
`govern audit report` (now) and `govern audit report --from --to` (a period), screenshots
each with `chromium --headless --no-sandbox`, and checks the picture: enough non-background
pixels and colours to be a rendered page. The period report is also printed to PDF
(`--print-to-pdf`): the PDF must hold one page per part of the report (print CSS page breaks)
and the timeline charts must have drawn (coloured bars in the screenshot).
"""

import json
import os
import re
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
        govern("secret", "show", "x-acme", who="bob")
        report = Path(tmp) / "report.html"
        govern("audit", "report", "--out", str(report))
        period = Path(tmp) / "period.html"
        began = json.loads(govern("audit", "log", "--json"))[0]["ts"]  # the period: the vault's whole life
        govern("audit", "report", "--from", began, "--to", "now", "--out", str(period))
        for page in (report, period):
            if not check_screenshot(page, Path(tmp)):
                return 1
        return 0 if check_pdf(period, Path(tmp)) else 1


def browse(page: Path, tmp: Path, *flags: str) -> None:
    subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp / 'profile'}", "--window-size=1280,1000", "--hide-scrollbars",
         *flags, page.as_uri()],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip


def check_screenshot(page: Path, tmp: Path) -> bool:
    screenshot = tmp / f"{page.stem}.png"
    browse(page, tmp, f"--screenshot={screenshot}")
    if not screenshot.exists():
        print(f"browser check: Chromium wrote no screenshot of {page.name}", file=sys.stderr)
        return False
    image = Image.open(screenshot).convert("RGB")
    width, height = image.size
    histogram = image.getcolors(maxcolors=width * height) or []
    background = max(histogram)[0] if histogram else width * height
    ink = 1 - background / (width * height)
    colours = len(histogram)
    keep = os.environ.get("GOVERN_BROWSER_SCREENSHOT")
    if keep:
        shutil.copy(screenshot, keep if page.stem == "report" else f"{keep}.{page.stem}.png")
    # The timeline bars: grant green (#2da44e) and admin blue (#0969da) must be drawn.
    counts = {colour: n for n, colour in histogram}
    bars = counts.get((0x2D, 0xA4, 0x4E), 0) + counts.get((0x09, 0x69, 0xDA), 0)
    print(
        f"browser check: {page.name}: {width}x{height} screenshot, {colours} colours,"
        f" {ink:.1%} of pixels not background, {bars} pixels of timeline bars"
    )
    if colours < 20 or ink < 0.02:
        print(f"browser check: the rendered {page.name} looks blank", file=sys.stderr)
        return False
    if page.stem == "period" and bars < 200:
        print("browser check: the period report's timeline charts did not draw", file=sys.stderr)
        return False
    return True


def check_pdf(page: Path, tmp: Path) -> bool:
    pdf = tmp / f"{page.stem}.pdf"
    browse(page, tmp, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    if not pdf.exists():
        print(f"browser check: Chromium printed no PDF of {page.name}", file=sys.stderr)
        return False
    data = pdf.read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    keep = os.environ.get("GOVERN_BROWSER_PDF")
    if keep:
        shutil.copy(pdf, keep)
    print(f"browser check: {pdf.name}: {len(data)} bytes, {pages} pages")
    # Six parts, each starting a page: a print without the page breaks or with nothing drawn fails.
    if not data.startswith(b"%PDF") or pages < 6 or len(data) < 20_000:
        print("browser check: the PDF print of the period report is wrong or trivial", file=sys.stderr)
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
