"""The platform catalogue: rotation defaults and password rules per platform.

Rules are conservative intersections of what each platform documents and accepts:
a generated password must be accepted at the platform's password form the first
time, or the rotation wastes a human's time.
"""

import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

DEFAULT_ROTATE_EVERY = timedelta(days=90)
DUE_SOON_WINDOW = timedelta(days=7)
DEFAULT_LENGTH = 24
# Symbols that every platform below accepts in a password field.
SAFE_SYMBOLS = "!#$%&*+-=?@^_"


@dataclass(frozen=True)
class PlatformRules:
    name: str
    min_length: int
    max_length: int
    symbols: str
    required_classes: int  # of: lower, upper, digit, symbol (what govern generates)
    rotate_every: timedelta = DEFAULT_ROTATE_EVERY
    manual_steps: tuple[str, ...] = ()
    # Kinds of character the platform itself demands of a password (letters, digits, symbols).
    must_have: tuple[str, ...] = ()

    @property
    def alphabet(self) -> str:
        return string.ascii_lowercase + string.ascii_uppercase + string.digits + self.symbols

    @property
    def generated_length(self) -> int:
        return max(self.min_length, min(DEFAULT_LENGTH, self.max_length))


_COMMON_STEPS = (
    "sign out all other sessions",
    "check recovery email/phone aren't theirs",
)

CATALOGUE: dict[str, PlatformRules] = {
    "x": PlatformRules(
        "x",
        8,
        128,
        SAFE_SYMBOLS,
        3,
        manual_steps=("remove from X Teams and delegated access", *_COMMON_STEPS),
    ),
    "instagram": PlatformRules(
        "instagram",
        6,
        128,
        SAFE_SYMBOLS,
        3,
        manual_steps=("remove from Meta Business Suite roles", *_COMMON_STEPS),
    ),
    "facebook": PlatformRules(
        "facebook",
        6,
        128,
        SAFE_SYMBOLS,
        3,
        manual_steps=("remove from Meta Business page roles", *_COMMON_STEPS),
    ),
    "linkedin": PlatformRules(
        "linkedin",
        8,
        128,
        SAFE_SYMBOLS,
        3,
        manual_steps=("remove as a LinkedIn page admin", *_COMMON_STEPS),
    ),
    # TikTok allows 8 to 20 characters and wants letters, numbers and special characters.
    "tiktok": PlatformRules(
        "tiktok",
        8,
        20,
        SAFE_SYMBOLS,
        4,
        manual_steps=("remove from TikTok Business Center", *_COMMON_STEPS),
        must_have=("letters", "digits", "symbols"),
    ),
    "youtube": PlatformRules(
        "youtube",
        8,
        100,
        SAFE_SYMBOLS,
        3,
        manual_steps=("remove from YouTube channel permissions", *_COMMON_STEPS),
    ),
    "other": PlatformRules("other", 12, 64, SAFE_SYMBOLS, 3, manual_steps=_COMMON_STEPS),
}


def rules_for(platform: str) -> PlatformRules:
    return CATALOGUE.get(platform, CATALOGUE["other"])


def character_classes(password: str) -> int:
    return sum(
        (
            any(c in string.ascii_lowercase for c in password),
            any(c in string.ascii_uppercase for c in password),
            any(c in string.digits for c in password),
            any(c in SAFE_SYMBOLS for c in password),
        )
    )


_KINDS: dict[str, Callable[[str], bool]] = {
    "letters": lambda c: c.isalpha(),
    "digits": lambda c: c.isdigit(),
    "symbols": lambda c: not c.isalnum() and c.isprintable() and not c.isspace(),
}


def broken_rules(password: str, rules: PlatformRules) -> list[str]:
    """The platform's own rules that a password chosen by a person breaks, in words (never quoting it).

    These are what the platform's password form refuses (length bounds, kinds of character it
    demands), not the stricter choices govern makes when it generates (``meets_rules``): a
    password the platform accepts is the platform's password. ``other`` has govern's floor.
    """
    broken = []
    if len(password) < rules.min_length:
        broken.append(f"at least {rules.min_length} characters")
    if len(password) > rules.max_length:
        broken.append(f"at most {rules.max_length} characters")
    missing = [kind for kind in rules.must_have if not any(_KINDS[kind](c) for c in password)]
    if missing:
        broken.append(f"needs {', '.join(missing)}")
    return broken


def meets_rules(password: str, rules: PlatformRules) -> bool:
    """What a generated password must meet: the rules, and only characters every platform accepts."""
    return (
        rules.min_length <= len(password) <= rules.max_length
        and all(c in rules.alphabet for c in password)
        and character_classes(password) >= rules.required_classes
    )


def generate_password(platform: str) -> str:
    """A random password the platform accepts, from ``secrets`` (rejection sampling)."""
    rules = rules_for(platform)
    while True:
        candidate = "".join(secrets.choice(rules.alphabet) for _ in range(rules.generated_length))
        if meets_rules(candidate, rules):
            return candidate
