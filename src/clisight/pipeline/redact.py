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
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final, Protocol

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
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}"),
    ("url_password", r"(?<=://)[^\s:/@]+:[^\s@/]+(?=@)"),
    (
        "assignment",
        r"(?i:\b(?:password|passwd|pwd|secret|api[_\-]?key|token)\s*[=:]\s*['\"]?[^\s'\",;&]{4,})",
    ),
)
_EMAIL: Final = ("email", r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b")

# Every value pattern needs one of these literals (lower-cased); most text has none, and one
# literal scan is ~20x cheaper than the full pattern set.
_GATE_LITERALS: Final = (
    "private key",
    "bearer",
    "basic",
    "token",
    "sk-",
    "sk_",
    "rk_",
    "akia",
    "asia",
    "agpa",
    "aida",
    "aroa",
    "anpa",
    "aws",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat",
    "xox",
    "aiza",
    "eyj",
    "://",
    "passw",
    "pwd",
    "secret",
    "api_key",
    "apikey",
    "api-key",
)
_GATE = re.compile("|".join(re.escape(lit) for lit in _GATE_LITERALS))
_LONG_RUN = re.compile(r"[A-Za-z0-9/+]{40}")  # the one value pattern with no literal to gate on

_CACHE_MAX: Final = 4096
_CACHE_LEN: Final = 512  # only short strings are worth caching


def describe(extra_keys: Iterable[str] = (), emails: bool = True) -> dict[str, Any]:
    """What the default redactor scrubs (``clisight doctor`` prints this)."""
    return {
        "key_patterns": list(SECRET_KEY_PATTERNS),
        "extra_keys": list(extra_keys),
        "value_patterns": [name for name, _ in _VALUE_PATTERNS] + ([_EMAIL[0]] if emails else []),
        "replacement": f"{REDACTED} for secret keys, [REDACTED:<pattern>] inside text",
    }


class Redactor(Protocol):
    """Scrubs one record's message and attributes before it is queued."""

    def message(self, text: str) -> str: ...

    def attributes(self, attrs: dict[str, Any]) -> dict[str, Any]: ...


class PatternRedactor:
    """The default :class:`Redactor`: key denylist plus credential and e-mail patterns."""

    def __init__(self, extra_keys: Iterable[str] = (), emails: bool = True) -> None:
        self._value_re: re.Pattern[str] | None = None  # compiled on first use: it costs ms at start-up
        self._emails = emails
        self._extra_keys = frozenset(k.lower() for k in extra_keys)
        self.cache: dict[str, str] = {}
        self._key_cache: dict[str, bool] = {}
        self.hits = 0  # how many substitutions or key scrubs were made (doctor shows it)

    def _compile(self) -> re.Pattern[str]:
        patterns = list(_VALUE_PATTERNS) + ([_EMAIL] if self._emails else [])
        self._value_re = re.compile("|".join(f"(?P<{name}>{rx})" for name, rx in patterns))
        return self._value_re

    def _sub(self, match: re.Match[str]) -> str:
        self.hits += 1
        return f"[REDACTED:{match.lastgroup}]"

    def message(self, text: str) -> str:
        cached = self.cache.get(text)
        if cached is not None:
            return cached
        if (
            (self._emails and "@" in text)
            or _GATE.search(text.lower())
            or (len(text) >= 40 and _LONG_RUN.search(text))
        ):
            value_re = self._value_re or self._compile()
            out = value_re.sub(self._sub, text)
        else:
            out = text
        if len(text) <= _CACHE_LEN:
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
        if isinstance(value, str):
            return self.message(value)
        if isinstance(value, int | float | bool) or value is None:
            return value
        if isinstance(value, dict):
            return self.attributes(value)
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, bytes | bytearray):
            return self.message(bytes(value).decode("utf-8", "replace"))
        # Anything else is stored by its text; scrub that text now, before it leaves.
        return self.message(str(value))

    def attributes(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """``attrs`` scrubbed: the same dict when nothing needed scrubbing, else a new one."""
        # The hot path of every call with fields: a check-only pass with the caches inlined; most
        # records have only known-safe keys, numbers and already-seen clean strings.
        key_cache = self._key_cache
        cache = self.cache
        for key, val in attrs.items():
            if key_cache.get(key) is not False:
                return self._scrub(attrs)
            kind = type(val)
            if kind is str:
                if cache.get(val) is not val:
                    return self._scrub(attrs)
            elif not (kind is int or kind is float or val is None or kind is bool):
                return self._scrub(attrs)
        return attrs

    def _scrub(self, attrs: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        key_cache = self._key_cache
        cache = self.cache
        for key, val in attrs.items():
            if type(key) is not str:
                key = str(key)
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
                out[key] = self.value(val)
        return out


class NullRedactor:
    """A :class:`Redactor` that keeps everything (``redact=False``)."""

    hits = 0

    def message(self, text: str) -> str:
        return text

    def attributes(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return attrs
