"""``audit report --from --to``: evidence for a period, computed from the verified log.

:func:`build` returns plain data (what ``--format json`` prints, what ``csv`` flattens and what
the HTML page shows, so every format carries the same figures). Every figure comes from the
log, verified in full at generation time (chain, seals, rules, this client's pin, and the
tables against the log); a log that fails verification produces no report (exit 6).
"""

import statistics
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from audit.errors import ChainError
from audit.log import format_ts
from audit.period import Timeline
from govern.context import Context, reading, vault_meta
from govern.errors import IntegrityFailure
from govern.services.common import require_role
from govern.services.period import check_period, verified_timeline
from govern.timeutil import format_time, parse_duration

READ_ALL = ("admin", "auditor")
# The timeline chart: width of the plotting area and of the labels, height of a row (px).
CHART_WIDTH, LABEL_WIDTH, ROW_HEIGHT = 620, 170, 22


def _dt(ts: str) -> datetime:
    """An event time as a naive UTC datetime (event times are all UTC)."""
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(later: str, earlier: str) -> int:
    return int((_dt(later) - _dt(earlier)).total_seconds())


def _in(ts: str | None, lo: str, hi: str) -> bool:
    return ts is not None and lo <= ts < hi


def build(ctx: Context, start: datetime, end: datetime) -> dict[str, Any]:
    """Every figure of the period report, as plain data."""
    from govern.trust import check_pin_against, save_pin, unexplained_rows

    lo, hi = check_period(start, end)
    with reading(ctx) as (session, me):
        require_role(me, READ_ALL, "produce the period report")
        now = format_ts(ctx.now())
        meta = vault_meta(session)
        timeline, result = verified_timeline(session)
        pin = check_pin_against(session, result.state)
        findings = unexplained_rows(session, result.state)
        if meta.id != result.state.vault_id:
            raise ChainError(f"the vault record says {meta.id}, the log {result.state.vault_id}")
        if findings:
            raise IntegrityFailure(
                f"{len(findings)} row(s) of the tables are not explained by the log: run 'govern audit verify'"
            )
        save_pin(result.state, ctx.db_url)
        generated_by = me.handle
    accounts = [
        _account(timeline, slug, lo, hi, now) for slug, added in sorted(timeline.accounts.items()) if added < hi
    ]
    return {
        "format": "govern-period-report/v1",
        "org": meta.org,
        "vault_id": meta.id,
        "from": format_time(start),
        "to": format_time(end),
        "generated_at": format_time(ctx.now()),
        "generated_by": generated_by,
        "verification": {
            "ok": True,
            "events": result.events,
            "transactions": result.transactions,
            "last_seq": result.last_seq,
            "head": result.head,
            "genesis": result.state.genesis,
            "pin": None if pin is None else f"extends this client's pin at event {pin.get('seq')}",
            "tables": "every governance row is explained by the log",
        },
        "totals": _totals(accounts),
        "accounts": accounts,
        "exposures": _exposures(timeline, lo, hi, now),
        "offboarding": _cases(timeline, lo, hi, now),
        "policy": _policy(timeline, hi),
        "reviews": _reviews(timeline, lo, hi),
    }


def _account(timeline: Timeline, slug: str, lo: str, hi: str, now: str) -> dict[str, Any]:
    holdings = timeline.during(slug, lo, hi, now)
    people = sorted({h["handle"] for h in holdings} | {h for (a, h, _k) in timeline.uses if a == slug})
    use = []
    for handle in people:
        row = {kind: timeline.count(slug, handle, kind, lo, hi) for kind in ("reveal", "totp", "denied")}
        if any(row.values()):
            use.append({"handle": handle, "reveals": row["reveal"], "totp_codes": row["totp"], "denied": row["denied"]})
    grants = [h for h in holdings if h["via"] == "grant"]
    ended = [h for h in grants if _in(h["until"], lo, hi)]
    return {
        "account": slug,
        "holders": holdings,
        "chart": _chart(holdings, lo, hi),
        "use": use,
        "grants": sum(1 for h in grants if _in(h["from"], lo, hi)),
        "revocations": sum(1 for h in ended if h["ended"] in ("revoked", "offboarded", "access review")),
        "expiries": sum(1 for h in ended if h["ended"] == "expired"),
        "rotation": _rotation(timeline, slug, lo, hi, now),
    }


def _rotation(timeline: Timeline, slug: str, lo: str, hi: str, now: str) -> dict[str, Any]:
    """Password changes in the period against the changes its rotation policy made due.

    Due dates run from the last change (or the account's creation): each one that falls in the
    period is met when the password changed on or before it, and missed otherwise (the next is
    then counted from the missed date). The policy is the account's latest ``rotate_every``.
    """
    changes = timeline.password_changes.get(slug, [])
    done = sum(1 for ts in changes if lo <= ts < hi)
    every = timeline.rotate_every.get(slug)
    out: dict[str, Any] = {"rotate_every": every, "done": done, "due": 0, "on_time": 0, "missed": 0}
    if every is None:
        out["compliance_pct"] = None
        return out
    step = parse_duration(every)
    last = _dt(timeline.accounts[slug])
    pending = [_dt(ts) for ts in changes]
    end = _dt(min(hi, now))  # a due date still ahead is not due yet
    start = _dt(lo)
    due = last + step
    while due < end:
        changed = [t for t in pending if last < t <= due]
        if due >= start:
            out["due"] += 1
            out["on_time" if changed else "missed"] += 1
        last = changed[-1] if changed else due
        due = last + step
    out["compliance_pct"] = 100.0 if out["due"] == 0 else round(100.0 * out["on_time"] / out["due"], 1)
    return out


def _chart(holdings: list[dict[str, Any]], lo: str, hi: str) -> dict[str, Any]:
    """Bars of the timeline chart, in pixels (rendered as inline SVG by the template)."""
    span = max(1.0, (_dt(hi) - _dt(lo)).total_seconds())

    def x(ts: str) -> float:
        offset = (_dt(ts) - _dt(lo)).total_seconds()
        return round(LABEL_WIDTH + CHART_WIDTH * min(max(offset, 0.0), span) / span, 1)

    bars = []
    for row, holding in enumerate(holdings):
        left = x(holding["from"])
        right = x(holding["until"]) if holding["until"] is not None else LABEL_WIDTH + CHART_WIDTH
        bars.append(
            {
                "y": 24 + row * ROW_HEIGHT,
                "x": left,
                "width": max(2.0, round(right - left, 1)),
                "label": f"{holding['handle']} ({holding['via']})",
                "kind": holding["via"].replace(" ", "-"),
                "title": f"{holding['handle']}: {holding['from']} → {holding['until'] or 'still holds'}"
                f" ({holding['started']}; {holding['ended'] or 'not ended'})",
            }
        )
    ticks = []
    shape = "%Y-%m-%d" if span >= 4 * 86400 else "%m-%d %H:%M"
    for i in range(5):
        moment = _dt(lo) + timedelta(seconds=span * i / 4)
        anchor = "start" if i == 0 else ("end" if i == 4 else "middle")
        ticks.append(
            {"x": round(LABEL_WIDTH + CHART_WIDTH * i / 4, 1), "label": moment.strftime(shape), "anchor": anchor}
        )
    return {
        "width": LABEL_WIDTH + CHART_WIDTH + 20,
        "height": 40 + max(1, len(holdings)) * ROW_HEIGHT,
        "label_width": LABEL_WIDTH,
        "plot_right": LABEL_WIDTH + CHART_WIDTH,
        "bars": bars,
        "ticks": ticks,
    }


def _exposures(timeline: Timeline, lo: str, hi: str, now: str) -> dict[str, Any]:
    opened = [e for e in timeline.exposures if _in(e.opened, lo, hi)]
    closed = [e for e in timeline.exposures if _in(e.closed, lo, hi)]
    durations = [_seconds(e.closed, e.opened) for e in closed if e.closed is not None]
    still_open = [e for e in timeline.exposures if e.opened < hi and (e.closed is None or e.closed >= hi)]
    rows = [
        {
            "account": e.account,
            "handle": e.handle,
            "kind": e.kind,
            "version": e.version,
            "opened": e.opened,
            "closed": e.closed if e.closed is not None and e.closed < hi else None,
            "time_to_rotate_s": _seconds(e.closed, e.opened) if e.closed is not None and e.closed < hi else None,
        }
        for e in timeline.exposures
        if e.opened < hi and (e.closed is None or e.closed >= lo)
    ]
    return {
        "opened": len(opened),
        "closed": len(closed),
        "open_at_end": len(still_open),
        "median_time_to_rotate_s": int(statistics.median(durations)) if durations else None,
        "worst_time_to_rotate_s": max(durations) if durations else None,
        "rows": rows,
    }


def _cases(timeline: Timeline, lo: str, hi: str, now: str) -> list[dict[str, Any]]:
    out = []
    for case in sorted(timeline.cases.values(), key=lambda c: c.id):
        if case.started >= hi or (case.closed is not None and case.closed < lo):
            continue
        closed = case.closed if case.closed is not None and case.closed < hi else None
        out.append(
            {
                "case": case.id,
                "handle": case.handle,
                "started": case.started,
                "deadline": case.deadline,
                "time_to_revoke_s": None if case.revoked is None else _seconds(case.revoked, case.started),
                "closed": closed,
                "time_to_close_s": None if closed is None else _seconds(closed, case.started),
                "met_deadline": None if closed is None else closed <= case.deadline,
                "overdue": closed is None and min(hi, now) > case.deadline,
            }
        )
    return out


def _policy(timeline: Timeline, hi: str) -> dict[str, Any]:
    published = [(ts, version) for ts, version in timeline.policies if ts < hi]
    if not published:
        return {"version": None, "people": 0, "acknowledged": 0, "coverage_pct": None, "pending": []}
    _ts, version = published[-1]
    active = sorted(
        handle
        for handle, (since, until) in timeline.people.items()
        if since is not None and since < hi and (until is None or until >= hi)
    )
    acked = [h for h in active if (timeline.acks.get((version, h)) or hi) < hi]
    return {
        "version": version,
        "people": len(active),
        "acknowledged": len(acked),
        "coverage_pct": 100.0 if not active else round(100.0 * len(acked) / len(active), 1),
        "pending": [h for h in active if h not in acked],
    }


def _reviews(timeline: Timeline, lo: str, hi: str) -> list[dict[str, Any]]:
    return [
        {
            "review": r.id,
            "name": r.name,
            "started": r.started,
            "started_by": r.started_by,
            "closed": r.closed if r.closed is not None and r.closed < hi else None,
            "certified": r.decisions.get("certified", 0),
            "revoked": r.decisions.get("revoked", 0),
        }
        for r in sorted(timeline.reviews.values(), key=lambda r: r.id)
        if r.started < hi and (r.closed is None or r.closed >= lo)
    ]


def _totals(accounts: list[dict[str, Any]]) -> dict[str, Any]:
    due = sum(a["rotation"]["due"] for a in accounts)
    on_time = sum(a["rotation"]["on_time"] for a in accounts)
    return {
        "accounts": len(accounts),
        "reveals": sum(u["reveals"] for a in accounts for u in a["use"]),
        "totp_codes": sum(u["totp_codes"] for a in accounts for u in a["use"]),
        "denied": sum(u["denied"] for a in accounts for u in a["use"]),
        "grants": sum(a["grants"] for a in accounts),
        "revocations": sum(a["revocations"] for a in accounts),
        "expiries": sum(a["expiries"] for a in accounts),
        "rotations_done": sum(a["rotation"]["done"] for a in accounts),
        "rotations_due": due,
        "rotation_compliance_pct": 100.0 if due == 0 else round(100.0 * on_time / due, 1),
    }


# -- formats ---------------------------------------------------------------------------------


def render(data: dict[str, Any], fmt: str) -> str:
    """The period report in ``fmt``: html, json or csv (RFC 4180, CRLF), all of the same data."""
    if fmt == "json":
        import json

        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        from govern.services.exports import csv_record

        return "".join(csv_record(row) + "\r\n" for row in csv_rows(data))
    return render_html(data)


def render_html(data: dict[str, Any]) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("govern", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["duration"] = _human
    return environment.get_template("period.html.j2").render(**data)


def _human(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {rest % 60}s" if minutes else f"{rest}s"


def _account_rows(account: dict[str, Any]) -> Iterator[list[Any]]:
    slug = account["account"]
    for name in ("grants", "revocations", "expiries"):
        yield ["account", slug, "", name, account[name]]
    for name, value in account["rotation"].items():
        yield ["rotation", slug, "", name, value]
    for holding in account["holders"]:
        for name in ("via", "from", "until", "started", "approvers", "ended", "ended_by", "reason"):
            value = holding[name]
            yield ["holding", slug, holding["handle"], name, ", ".join(value) if isinstance(value, list) else value]
        yield ["holding", slug, holding["handle"], "reveals", holding["reveals"]]
        yield ["holding", slug, holding["handle"], "totp_codes", holding["totp_codes"]]
    for use in account["use"]:
        for name in ("reveals", "totp_codes", "denied"):
            yield ["use", slug, use["handle"], name, use[name]]


def csv_rows(data: dict[str, Any]) -> Iterator[list[Any]]:
    """The same figures as one long table: section, account, person, figure, value."""
    yield ["section", "account", "person", "figure", "value"]
    for name, value in data["verification"].items():
        yield ["verification", "", "", name, value]
    for name, value in data["totals"].items():
        yield ["totals", "", "", name, value]
    for account in data["accounts"]:
        yield from _account_rows(account)
    exposures = data["exposures"]
    for name in ("opened", "closed", "open_at_end", "median_time_to_rotate_s", "worst_time_to_rotate_s"):
        yield ["exposures", "", "", name, exposures[name]]
    for case in data["offboarding"]:
        for name, value in case.items():
            yield ["offboarding", "", case["handle"], f"case {case['case']} {name}", value]
    for name, value in data["policy"].items():
        yield ["policy", "", "", name, ", ".join(value) if isinstance(value, list) else value]
    for review in data["reviews"]:
        for name, value in review.items():
            yield ["review", "", "", f"review {review['review']} {name}", value]
