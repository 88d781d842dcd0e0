"""Scrubbing secrets and personal data before a record is queued.

Two rules, both on by default:

- **Keys**: the value of any attribute whose key names a secret (password, secret, token,
  api_key, authorization, cookie, credential, private_key, session key...) is replaced whole.
  Counting fields such as ``input_tokens`` or ``max_tokens`` are not secrets and are kept.
- **Values**: substrings that look like credentials (Bearer tokens, AWS access keys,
  Anthropic/OpenAI/GitHub/Slack/Google keys, JWTs, private key blocks, passwords in URLs) or e-mail
  addresses are replaced by ``[REDACTED:<kind>]`` in messages and in string attributes, nested
  dicts and lists included.

Messages repeat (they are mostly constant templates), so results for short strings are cached;
the cache is bounded and cleared when full.

Every scan costs bounded time: a value longer than ``max_chars`` (the ``max_field_chars``
parameter) is cut to that length before it is scanned, and marked (``…[truncated: N chars]``);
nested dicts and lists are scrubbed to a bounded depth and item count; every pattern runs in time
linear in the text it scans.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from clisight import _config

REDACTED: Final = "[REDACTED]"

# Attribute keys whose values are secrets (regular expressions, matched case-insensitively anywhere
# in the key unless anchored).
SECRET_KEY_PATTERNS: Final[tuple[str, ...]] = (
    r"pass(word|wd|phrase)?",
    r"pwd",
    r"secret",
    r"(^|[_\-.])token$",
    r"^token",
    r"access[_\-]?token",
    r"refresh[_\-]?token",
    r"api[_\-]?key",
    r"apikey",
    r"auth(orization)?$",
    r"^auth",
    r"cookie",
    r"credential",
    r"private[_\-]?key",
    r"signature",
    r"session[_\-]?key",
    r"client[_\-]?secret",
    r"^dsn$",
    r"connection[_\-]?string",
)
_SECRET_KEY = re.compile("(?i)(" + "|".join(SECRET_KEY_PATTERNS) + ")")

_VALUE_PATTERNS: Final[tuple[tuple[str, str], ...]] = (
    ("private_key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    ("bearer", r"(?i:\b(?:bearer|basic|token)\s+[A-Za-z0-9._~+/=\-]{8,})"),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_\-]{10,}"),
    ("openai_key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}"),
    ("aws_access_key", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b"),
    ("aws_secret", r"(?i:aws.{0,20}?(?:secret|key).{0,5}?[=:]\s*['\"]?[A-Za-z0-9/+]{40})"),
    # A bare 40-character AWS secret access key: base64 alphabet with both cases and a digit
    # (git SHAs, all lower-case hex, do not match).
    (
        "aws_secret_key",
        r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[A-Z])"
        r"(?=[A-Za-z0-9/+]*[0-9])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
    ),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("google_key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("stripe_key", r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    # Tried only at the start of a run of token characters, from its first "eyJ": a failed try
    # from one "eyJ" fails from every later one in the run, and retrying each made "eyJ-eyJ-..." quadratic.
    (
        "jwt",
        r"(?<![A-Za-z0-9_\-])(?>[A-Za-z0-9_\-]*?\b(?=eyJ))"
        r"eyJ[A-Za-z0-9_\-]{5,}+\.eyJ[A-Za-z0-9_\-]{5,}+\.[A-Za-z0-9_\-]{5,}+",
    ),
    ("url_password", r"(?<=://)[^\s:/@]+:[^\s@/]+(?=@)"),
    (
        "assignment",
        r"(?i:\b(?:password|passwd|pwd|secret|api[_\-]?key|token)\s*[=:]\s*['\"]?[^\s'\",;&]{4,})",
    ),
)
# The local part starts where a run of its characters starts (not at every "\b" inside it, which
# made a long run without "@" quadratic).
_EMAIL: Final = (
    "email",
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]++@[A-Za-z0-9\-]++(?:\.[A-Za-z0-9\-]++)*\.[A-Za-z]{2,}\b",
)


# The literals (lower-cased) each value pattern needs; the bare AWS secret has none and needs a
# 40-character run instead.  Most text has none of them, and ``in`` checks are ~20x cheaper than
# the patterns (and than one regex alternation of the literals), so only the patterns whose
# literals occur are run.
_NEEDS: Final[dict[str, tuple[str, ...]]] = {
    "private_key": ("private key",),
    "bearer": ("bearer", "basic", "token"),
    "anthropic_key": ("sk-",),
    "openai_key": ("sk-",),
    "aws_access_key": ("akia", "asia", "agpa", "aida", "aroa", "anpa"),
    "aws_secret": ("aws",),
    "aws_secret_key": (),
    "github_token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat"),
    "slack_token": ("xox",),
    "google_key": ("aiza",),
    "stripe_key": ("sk_", "rk_"),
    "jwt": ("eyj",),
    "url_password": ("://",),
    "assignment": ("passw", "pwd", "secret", "api_key", "apikey", "api-key", "token"),
    "email": ("@",),
}
_LONG_RUN = re.compile(r"[A-Za-z0-9/+]{40}")  # the one value pattern with no literal to gate on

_CACHE_MAX: Final = 4096
_CACHE_LEN: Final = 512  # only short strings are worth caching

MAX_FIELD_CHARS: Final = 16_384  # the default of the ``max_field_chars`` parameter (a test pins them equal)
_SCAN_MARGIN: Final = 512  # scanned past the cut, so a secret the cut goes through is replaced whole
_MAX_DEPTH: Final = 32  # nesting scrubbed; deeper values are replaced by a marker
_MAX_ITEMS: Final = 2_000  # nested dict and list items scrubbed per attribute set; the rest are cut
TOO_DEEP: Final = "[clisight: nested too deep]"


def describe(extra_keys: Iterable[str] = (), emails: bool = True) -> dict[str, Any]:
    """What the default redactor scrubs (``clisight doctor`` prints this)."""
    return {
        "key_patterns": list(SECRET_KEY_PATTERNS),
        "extra_keys": list(extra_keys),
        "value_patterns": [name for name, _ in _VALUE_PATTERNS] + ([_EMAIL[0]] if emails else []),
        "replacement": f"{REDACTED} for secret keys, [REDACTED:<pattern>] inside text",
    }


def as_text(value: object) -> str:
    """``str(value)`` as a plain ``str``; never raises: when ``__str__`` raises, a placeholder such as
    ``<unprintable ValueError: str() raised TypeError>``."""
    try:
        text = str(value)
        return text if type(text) is str else str.__str__(text)
    except Exception as exc:
        return unprintable(value, "str", exc)


def as_repr(value: object) -> str:
    """``repr(value)``, or a placeholder when ``__repr__`` raises; never raises."""
    try:
        text = repr(value)
        return text if type(text) is str else str.__str__(text)
    except Exception as exc:
        return unprintable(value, "repr", exc)


def unprintable(value: object, call: str, exc: BaseException) -> str:
    """The placeholder text of a value whose ``str()``/``repr()`` (``call``) raised ``exc``."""
    return f"<unprintable {type(value).__name__}: {call}() raised {type(exc).__name__}>"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters and marked ``…[truncated: N chars]`` (N: its whole length)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated: {len(text)} chars]"


class Redactor(Protocol):
    """Scrubs one record's message and attributes before it is queued (and bounds their size)."""

    def message(self, text: str) -> str: ...

    def attributes(self, attrs: dict[str, Any]) -> dict[str, Any]: ...


class PatternRedactor:
    """The default :class:`Redactor`: key denylist plus credential and e-mail patterns.

    Strings longer than ``max_chars`` are cut (and marked) before they are scanned, so one call
    costs bounded time whatever it is given.
    """

    def __init__(
        self, extra_keys: Iterable[str] = (), emails: bool = True, max_chars: int = MAX_FIELD_CHARS
    ) -> None:
        patterns = list(_VALUE_PATTERNS) + ([_EMAIL] if emails else [])
        self._patterns = patterns
        self._literals = [(lit, name) for name, _ in patterns for lit in _NEEDS[name]]
        # One compiled pattern per set of needed patterns, compiled on first use (each costs ~1 ms).
        self._compiled: dict[tuple[str, ...], re.Pattern[str]] = {}
        self._emails = emails
        self._extra_keys = frozenset(k.lower() for k in extra_keys)
        self.max_chars = max_chars
        self.cache: dict[str, str] = {}
        self._key_cache: dict[str, bool] = {}
        self.hits = 0  # how many substitutions or key scrubs were made (doctor shows it)

    def _sub(self, match: re.Match[str]) -> str:
        self.hits += 1
        return f"[REDACTED:{match.lastgroup}]"

    def _scan(self, text: str) -> str:
        lower = text.lower()
        long_run = len(text) >= 40 and _LONG_RUN.search(text) is not None
        hit = {name for literal, name in self._literals if literal in lower}
        if long_run:
            hit.add("aws_secret_key")
        if not hit:
            return text
        needed = tuple(name for name, _ in self._patterns if name in hit)
        value_re = self._compiled.get(needed)
        if value_re is None:
            if len(self._compiled) >= 64:
                self._compiled.clear()
            value_re = self._compiled[needed] = re.compile(
                "|".join(f"(?P<{name}>{rx})" for name, rx in self._patterns if name in hit)
            )
        return value_re.sub(self._sub, text)

    def message(self, text: str) -> str:
        """``text`` scrubbed, cut to ``max_chars`` (and marked) when longer."""
        if type(text) is not str:
            text = str.__str__(text) if isinstance(text, str) else as_text(text)
        cached = self.cache.get(text)
        if cached is not None:
            return cached
        size = len(text)
        if size > self.max_chars:
            # Scanned a margin past the cut, so a secret the cut goes through is replaced whole first.
            head = self._scan(text[: self.max_chars + _SCAN_MARGIN])
            return f"{head[: self.max_chars]}…[truncated: {size} chars]"
        out = self._scan(text)
        if size <= _CACHE_LEN:
            if len(self.cache) >= _CACHE_MAX:
                self.cache.clear()
            # Unchanged text maps to itself (the same object): attributes() relies on that identity.
            self.cache[text] = text if out == text else out
        return out

    def is_secret_key(self, key: str) -> bool:
        known = self._key_cache.get(key)
        if known is None:
            known = bool(_SECRET_KEY.search(key)) or key.lower() in self._extra_keys
            if len(self._key_cache) < _CACHE_MAX:
                self._key_cache[key] = known
        return known

    def value(self, value: Any) -> Any:
        """``value`` scrubbed: strings, bytes and other objects as text, dicts and lists item by item
        (at most ``_MAX_DEPTH`` deep and ``_MAX_ITEMS`` items)."""
        return self._value(value, 0, [_MAX_ITEMS])

    def _value(self, value: Any, depth: int, budget: list[int]) -> Any:
        if isinstance(value, str):
            return self.message(value)
        if isinstance(value, int | float) or value is None:  # bool is an int
            return value
        if isinstance(value, bytes | bytearray):
            raw = bytes(value[: self.max_chars])
            text = self.message(raw.decode("utf-8", "replace"))
            return text if len(value) <= self.max_chars else f"{text}…[truncated: {len(value)} bytes]"
        if depth >= _MAX_DEPTH:
            return TOO_DEEP
        if isinstance(value, dict):
            return self._scrub(value, depth + 1, budget)
        if isinstance(value, list | tuple):
            out = []
            for item in value:
                budget[0] -= 1
                if budget[0] < 0:
                    out.append(f"…[truncated: {len(value)} items]")
                    break
                out.append(self._value(item, depth + 1, budget))
            return out
        # Anything else is stored by its text; scrub that text now, before it leaves.
        return self.message(as_text(value))

    def attributes(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """``attrs`` scrubbed: the same dict when nothing needed scrubbing, else a new one."""
        # The hot path of every call with fields: a check-only pass with the caches inlined; most
        # records have only known-safe keys, numbers and already-seen clean strings.
        key_cache = self._key_cache
        cache = self.cache
        for key, val in attrs.items():
            if key_cache.get(key) is not False:
                return self._scrub(attrs, 0, [_MAX_ITEMS])
            kind = type(val)
            if kind is str:
                # Equal, not only identical: a string decoded from a request is a new object each time.
                clean = cache.get(val)
                if clean is not val and clean != val:
                    return self._scrub(attrs, 0, [_MAX_ITEMS])
            elif not (kind is int or kind is float or val is None or kind is bool):
                return self._scrub(attrs, 0, [_MAX_ITEMS])
        return attrs

    def _scrub(self, attrs: dict[str, Any], depth: int, budget: list[int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        key_cache = self._key_cache
        cache = self.cache
        for key, val in attrs.items():
            # Top-level fields are all kept (the caller built them, one by one); nested values are
            # budgeted, since a huge list passed by reference cost the caller nothing.
            if depth:
                budget[0] -= 1
                if budget[0] < 0:
                    out["…"] = f"[truncated: {len(attrs)} items]"
                    break
            if type(key) is not str:
                key = str.__str__(key) if isinstance(key, str) else as_text(key)
            secret = key_cache.get(key)
            if secret is None:
                secret = self.is_secret_key(key)
            # A number under a token-ish key is a count (tokens=300, token_count=2), not a credential.
            if (
                secret
                and val is not None
                and not (type(val) in (int, float, bool) and ("token" in key.lower() or type(val) is bool))
            ):
                self.hits += 1
                out[key] = REDACTED
                continue
            kind = type(val)
            if kind is str:
                clean = cache.get(val)
                out[key] = clean if clean is not None else self.message(val)
            elif kind is int or kind is float or val is None or kind is bool:
                out[key] = val
            else:
                out[key] = self._value(val, depth, budget)
        return out


class NullRedactor:
    """A :class:`Redactor` that keeps everything (``redact=False``) but still cuts strings longer
    than ``max_chars`` (the message and top-level string attributes) and marks them."""

    hits = 0

    def __init__(self, max_chars: int = MAX_FIELD_CHARS) -> None:
        self.max_chars = max_chars

    def message(self, text: str) -> str:
        if type(text) is not str:
            text = str.__str__(text) if isinstance(text, str) else as_text(text)
        return truncate(text, self.max_chars)

    def attributes(self, attrs: dict[str, Any]) -> dict[str, Any]:
        limit = self.max_chars
        for val in attrs.values():
            if isinstance(val, str) and len(val) > limit:
                return {k: truncate(v, limit) if isinstance(v, str) else v for k, v in attrs.items()}
        return attrs


def redactor_from_config(config: _config.Config) -> Redactor:
    """The redactor a configuration asks for: the patterns and extra keys, or none at all."""
    if config["redact"]:
        return PatternRedactor(
            config["redact_keys"], emails=config["redact_emails"], max_chars=config["max_field_chars"]
        )
    return NullRedactor(config["max_field_chars"])
