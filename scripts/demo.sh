#!/usr/bin/env bash
# A scripted tour of govern on a brand-new SQLite vault in a temporary folder.
# It never touches your own vault or keyring: GOVERN_HOME points at the temporary
# folder and the unlock cache is off (GOVERN_CACHE_TTL=0).
set -euo pipefail

DEMO_DIR="$(mktemp -d "${TMPDIR:-/tmp}/govern-demo.XXXXXX")"
trap 'rm -rf "$DEMO_DIR"' EXIT
export GOVERN_HOME="$DEMO_DIR/home"
export GOVERN_CACHE_TTL=0
unset GOVERN_DB_URL GOVERN_PASSPHRASE GOVERN_PASSPHRASE_FILE GOVERN_USER

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
# Run govern as a person; their demo passphrase comes from the environment, never argv.
as() {
    local who="$1"; shift
    printf '$ govern --as %s %s\n' "$who" "$*" >&2
    GOVERN_USER="$who" GOVERN_PASSPHRASE="demo passphrase of $who" govern "$@"
}

step "Create the vault: Alice is the first admin; the recovery key goes to a 0600 file"
as alice init --org "Acme Corp" --admin alice --name "Alice Admin" --email alice@acme.example \
    --recovery-file "$DEMO_DIR/recovery-key.txt"
ls -l "$DEMO_DIR/recovery-key.txt" >&2

step "Enrol Bob (social media manager) with a one-time code"
CODE=$(as alice staff add bob --name "Bob Social" --team social --role manager)
as bob staff enroll bob --code "$CODE"
CODE=$(as alice staff add carol --name "Carol Audit" --role auditor)
as carol staff enroll carol --code "$CODE"
as alice staff list

step "Register the company's X account and seal its credentials"
as alice account add x-acme --platform x --handle @acme --team social --owner bob --rotate-every 90d
printf 'Tr0ub4dor&3-x-acme\n' | as alice secret set x-acme --username acme-social --password-stdin
printf 'otpauth://totp/X:acme?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=X\n' \
    | as alice secret set x-acme --totp-uri -
as alice secret history x-acme

step "Publish the social media policy: access now needs its acknowledgement"
printf '# Acme social media policy\n\nOnly approved staff post as Acme. Never share passwords.\n' > "$DEMO_DIR/policy.md"
as alice policy publish "$DEMO_DIR/policy.md" --version 2026-11
as bob policy ack

step "Bob cannot read it until he has access; he asks, and Alice approves"
as bob secret show x-acme || echo "(exit $? — denied, as it should be)" >&2
REQUEST=$(as bob access request x-acme --reason "runs the X account" --for 30d)
as alice inbox
as bob access approve "$REQUEST" || echo "(exit $? — nobody approves their own request)" >&2
as alice access approve "$REQUEST"
as bob secret show x-acme
as bob totp x-acme
as alice access list

step "Carol the auditor can never decrypt"
as carol secret show x-acme || echo "(exit $? — auditors never decrypt)" >&2

step "Two-phase rotation: the new password is pending until confirmed"
as bob rotation start x-acme
as bob secret show x-acme --pending
as bob rotation confirm x-acme
as alice rotation status

step "Bob leaves: one command revokes everything and forces what he knew to change"
as alice offboard start bob --reason "left the company"
as alice rotation status --check || echo "(exit $? — x-acme is exposed to bob until rotated)" >&2
as alice rotation start x-acme >/dev/null
as alice rotation confirm x-acme
printf 'otpauth://totp/X:acme?secret=KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU&issuer=X\n' \
    | as alice secret set x-acme --totp-uri -
as alice offboard status bob --open
STEPS=$(as alice offboard status bob --json | python3 -c 'import json,sys; print(" ".join(str(s["step"]) for s in json.load(sys.stdin)["steps"] if s["status"] == "open" and s["kind"] == "manual"))')
# shellcheck disable=SC2086 # one argument per step number
as alice offboard done bob $STEPS --note "done at the platform" >/dev/null
as alice offboard report bob | head -20

step "The audit log: every change and every reveal, hash-chained and signed"
as carol audit log --account x-acme
as carol audit verify
as carol audit export --format jsonl --out "$DEMO_DIR/audit.jsonl"
govern audit verify --export "$DEMO_DIR/audit.jsonl" >/dev/null && echo "(the export verifies offline)" >&2
as carol audit report --out "$DEMO_DIR/report.html"

step "Health check of the installation"
as alice doctor || true
printf '\nDemo finished; the temporary vault in %s is removed.\n' "$DEMO_DIR" >&2
