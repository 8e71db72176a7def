"""Secrets as people hold them: 2FA keys as platforms show them, generated passwords, platform rules."""

import json
from typing import Any

import pytest
from conftest import CANARY_PASSWORD, CANARY_SEED, Govern

from govern.errors import InvalidInput
from govern.platforms import CATALOGUE, broken_rules, generate_password, meets_rules
from govern.totp import normalise_key, seed_bits, uri_from_key, validate_uri

GROUPED = " ".join(CANARY_SEED.lower()[i : i + 4] for i in range(0, len(CANARY_SEED), 4))


def events(g: Govern, action: str) -> list[dict[str, Any]]:
    return [e for e in g.ok("audit", "log", "--json").json() if e["action"] == action]


def stored_uri(g: Govern, slug: str = "x-acme") -> str:
    return g.ok("secret", "show", slug, "--field", "totp-uri").out.strip()


@pytest.mark.parametrize(
    "shown",
    [
        CANARY_SEED,
        CANARY_SEED.lower(),
        GROUPED,
        "-".join(CANARY_SEED[i : i + 4] for i in range(0, len(CANARY_SEED), 4)),
        "JBSWY3DPEHPK3PXP",  # 80 bits, unpadded
        "MFRGGZDFMZTWQ2LKNNWG23TPOA======",  # padded, 160 bits
        "mfrggzdfmztwq2lknnwg23tpoa",  # the same, lower case, no padding
    ],
)
def test_keys_as_platforms_show_them_are_normalised(shown: str) -> None:
    key = normalise_key(shown)
    assert key == key.upper()
    assert " " not in key
    assert "-" not in key
    assert "=" not in key
    assert seed_bits(uri_from_key(shown, "x-acme")) >= 80


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("JBSWY3DPEHPK3PX", "bits"),  # 72 bits: below the 80-bit floor
        ("JBSW1Y3DPEHPK3PXP", "base32"),  # 1 is not base32
        ("", "empty"),
        ("  - -  ", "empty"),
        ("JBSWY3DPE", "base32"),  # 9 characters: an impossible base32 length
    ],
)
def test_bad_keys_are_refused_without_echo(bad: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalise_key(bad)
    assert says in str(caught.value)
    assert not bad.strip(" -") or bad.strip() not in str(caught.value)


def test_uri_secret_is_normalised_and_the_rest_kept() -> None:
    uri = f"otpauth://totp/Acme:social?secret={GROUPED.replace(' ', '%20')}&issuer=Acme&digits=6"
    normal = validate_uri(uri)
    assert f"secret={CANARY_SEED}" in normal
    assert "issuer=Acme" in normal
    assert "digits=6" in normal
    assert normal.startswith("otpauth://totp/Acme")


def test_totp_key_from_stdin_in_any_shape(vault: Govern) -> None:
    vault.ok("secret", "set", "x-acme", "--totp-key", "-", input=GROUPED + "\n")
    uri = stored_uri(vault)
    assert uri == f"otpauth://totp/x-acme?secret={CANARY_SEED}"
    code = vault.ok("totp", "x-acme", "--json").json()["code"]
    assert len(code) == 6
    assert code.isdigit()


def test_totp_key_on_the_command_line_is_refused(vault: Govern) -> None:
    result = vault("secret", "set", "x-acme", "--totp-key", GROUPED)
    assert result.code == 2
    assert "--totp-key -" in result.err
    assert CANARY_SEED.lower()[:8] not in result.err


def test_a_seed_under_80_bits_is_refused_with_a_clear_message(vault: Govern) -> None:
    result = vault("secret", "set", "x-acme", "--totp-key", "-", input="jbsw y3dp ehpk 3px\n")
    assert result.code == 2
    assert "at least 80" in result.err
    assert "RFC 4226" in result.err
    assert "totp-uri" not in vault.ok("secret", "history", "x-acme", "--json").json()[-1]["fields"]


def test_a_seed_under_128_bits_is_stored_with_a_warning(vault: Govern) -> None:
    result = vault.ok("secret", "set", "x-acme", "--totp-key", "-", input="JBSWY3DPEHPK3PXP\n")
    assert "80 bits" in result.err
    assert "RFC 4226" in result.err
    full = vault.ok("secret", "set", "x-acme", "--totp-key", "-", input=CANARY_SEED + "\n")
    assert "RFC 4226" not in full.err


def test_totp_uri_with_grouped_lowercase_secret_is_accepted(vault: Govern) -> None:
    uri = f"otpauth://totp/Acme:social?secret={GROUPED.replace(' ', '%20')}&issuer=Acme"
    vault.ok("secret", "set", "x-acme", "--totp-uri", "-", input=uri + "\n")
    assert f"secret={CANARY_SEED}" in stored_uri(vault)


def test_totp_uri_and_key_together_is_a_usage_error(vault: Govern) -> None:
    assert vault("secret", "set", "x-acme", "--totp-uri", "-", "--totp-key", "@/nonexistent").code == 2


# -- generation and platform rules -------------------------------------------------------


@pytest.mark.parametrize("platform", sorted(CATALOGUE))
def test_generated_passwords_meet_every_platform_rule(platform: str) -> None:
    rules = CATALOGUE[platform]
    for _ in range(50):
        password = generate_password(platform)
        assert meets_rules(password, rules)
        assert not broken_rules(password, rules)


def test_generate_makes_a_password_from_the_platform_rules(vault: Govern) -> None:
    vault.ok("account", "add", "tt-acme", "--platform", "tiktok", "--handle", "@acme")
    result = vault.ok("secret", "set", "tt-acme", "--generate", "--json").json()
    assert result["generated"] is True
    assert result["fields"] == ["password"]
    password = vault.ok("secret", "show", "tt-acme").out.strip()
    assert 8 <= len(password) <= 20
    assert meets_rules(password, CATALOGUE["tiktok"])
    event = events(vault, "secret.set")[-1]
    assert event["data"]["generated"] == {"platform_rules": "tiktok", "length": len(password)}
    assert password not in json.dumps(vault.ok("audit", "log", "--json").json())


def test_generate_with_a_password_of_your_own_is_a_usage_error(vault: Govern) -> None:
    assert vault("secret", "set", "x-acme", "--generate", "--password-stdin", input="x\n").code == 2


def test_weak_manual_password_is_refused_naming_the_rule(vault: Govern) -> None:
    vault.ok("account", "add", "tt-acme", "--platform", "tiktok", "--handle", "@acme")
    result = vault("secret", "set", "tt-acme", "--password-stdin", input="a\n")
    assert result.code == 2
    assert "tiktok" in result.err
    assert "at least 8 characters" in result.err
    assert "digits" in result.err
    assert "--allow-weak" in result.err
    assert vault.ok("secret", "history", "tt-acme", "--json").json() == []


def test_a_password_too_long_for_the_platform_is_refused(vault: Govern) -> None:
    vault.ok("account", "add", "tt-acme", "--platform", "tiktok", "--handle", "@acme")
    result = vault("secret", "set", "tt-acme", "--password-stdin", input="Ab1!" * 6 + "\n")
    assert result.code == 2
    assert "at most 20 characters" in result.err


def test_allow_weak_keeps_it_and_records_the_reason_never_the_value(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault.ok("secret", "show", "x-acme", as_="bob")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left the team")
    assert vault.ok("secret", "history", "x-acme", "--json").json()[-1]["exposed_to"] == 1
    weak = "shortpw"  # 7 characters: X wants 8
    reason = "the platform still has this one; rotating on Monday"
    result = vault("secret", "set", "x-acme", "--password-stdin", "--allow-weak", reason, input=weak + "\n")
    assert result.code == 0, result.err
    assert "breaks" in result.err
    event = events(vault, "secret.set")[-1]
    assert event["data"]["weak_password"] == {
        "platform_rules": "x",
        "broken": ["at least 8 characters"],
        "reason": reason,
    }
    log = json.dumps(vault.ok("audit", "log", "--json").json())
    assert weak not in log
    assert CANARY_PASSWORD not in log
    # A new value the former holder never saw: still a new version, and it clears the exposure.
    history = vault.ok("secret", "history", "x-acme", "--json").json()
    assert history[-1]["status"] == "current"
    assert history[-1]["exposed_to"] == 0


def test_allow_weak_without_a_password_is_a_usage_error(vault: Govern) -> None:
    assert vault("secret", "set", "x-acme", "--generate", "--allow-weak", "because").code == 2


def test_a_compliant_manual_password_is_not_flagged(vault: Govern) -> None:
    vault.ok("secret", "set", "x-acme", "--password-stdin", input="a-perfectly-fine-one\n")
    assert "weak_password" not in events(vault, "secret.set")[-1]["data"]
