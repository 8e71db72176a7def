"""The self-contained HTML access-review page for auditors (Jinja2, autoescaped)."""

from datetime import datetime
from typing import Any

from sqlmodel import col, select

from audit.errors import ChainError
from audit.stream import head
from govern.context import Context, reading, vault_meta
from govern.models import Account, Exposure, Grant, OffboardCase, Person
from govern.services.common import grant_status, require_role


def build(ctx: Context) -> dict[str, Any]:
    """Everything the page shows, as plain data (also what tests inspect)."""
    from govern.casework import case_view
    from govern.services import auditing, review, rotation

    try:
        verified = auditing.verify(ctx)
        verification = {
            "ok": not verified["findings"],
            "events": verified["events"],
            "transactions": verified["transactions"],
            "findings": verified["findings"],
            "error": f"{len(verified['findings'])} row(s) not explained by the log" if verified["findings"] else None,
        }
    except ChainError as exc:
        verification = {"ok": False, "events": None, "transactions": None, "findings": [], "error": str(exc)}
    rotation_rows = rotation.status(ctx)
    reviews = review.list_reviews(ctx)[-5:]
    with reading(ctx) as (session, me):
        require_role(me, ("admin", "auditor"), "produce the access-review report")
        now = ctx.now()
        meta = vault_meta(session)
        accounts = list(session.exec(select(Account).order_by(col(Account.slug))).all())
        people = list(session.exec(select(Person).order_by(col(Person.handle))).all())
        grants = [g for g in session.exec(select(Grant)).all() if grant_status(g, now) == "live"]
        exposures = session.exec(select(Exposure).where(col(Exposure.cleared_at).is_(None))).all()
        exposed = {(e.person_id, e.account_id) for e in exposures}
        matrix = []
        for person in people:
            cells = []
            for account in accounts:
                grant = next((g for g in grants if g.person_id == person.id and g.account_id == account.id), None)
                classes, text, title = [], "", ""
                if person.role == "admin" and person.status == "active":
                    classes.append("custodian")
                    text, title = "custodian", "admins hold every data key"
                if grant is not None:
                    classes.append("holds")
                    until = grant.ends_at.strftime("%Y-%m-%d") if grant.ends_at else None
                    text = "holds" + (f" until {until}" if until else "")
                    title = f"grant {grant.id}: {grant.reason} (by {grant.granted_by})"
                    if grant.over_cap_reason is not None:
                        classes.append("overcap")
                        title += f"; over cap: {grant.over_cap_reason}"
                if (person.id, account.id) in exposed:
                    classes.append("exposed")
                    text = (text + " · " if text else "") + "EXPOSED"
                cells.append({"classes": " ".join(classes), "text": text, "title": title})
            matrix.append({"handle": person.handle, "role": person.role, "status": person.status, "cells": cells})
        last = head(session)
        cases = [
            case_view(session, case, now, with_steps=False)
            for case in session.exec(select(OffboardCase).where(OffboardCase.status == "open")).all()
        ]
        for row in rotation_rows:
            row["age_days"] = _age_days(row["last_rotated"], now)
            row["exposed_names"] = ", ".join(sorted({f"{e['handle']} ({e['kind']})" for e in row["exposed_to"]}))
        return {
            "org": meta.org,
            "vault_id": meta.id,
            "generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "generated_by": me.handle,
            "verification": verification,
            "head": {"seq": None if last is None else last.seq, "hash": None if last is None else last.hash},
            "accounts": [a.slug for a in accounts],
            "matrix": matrix,
            "rotation": rotation_rows,
            "cases": cases,
            "reviews": reviews,
        }


def _age_days(iso: str | None, now: datetime) -> int | None:
    if iso is None:
        return None
    return (now - datetime.fromisoformat(iso.replace("Z", "+00:00"))).days


def render(data: dict[str, Any]) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("govern", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("report.html.j2").render(**data)
