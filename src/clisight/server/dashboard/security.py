"""The dashboard's defences against the data it shows and the pages a browser also visits.

- **Headers** on every dashboard response (:class:`SecurityHeaders`): a Content-Security-Policy
  that allows only our own scripts, styles and connections (no inline script or style, no
  framing, forms post only to us), ``nosniff``, ``no-referrer`` (a ``?token=`` never leaks).
- **CSRF** (:class:`Csrf`): every state change is a POST carrying a token; the token is an HMAC,
  under a secret made when the process starts, of a random nonce kept in a ``SameSite=Strict``
  cookie, compared in constant time.  Another site can neither read the cookie nor compute the
  token, so it cannot forge the form.
- **Browser login** with a server token: ``?token=...`` on any page, once, sets an ``HttpOnly``
  ``SameSite=Strict`` cookie holding an HMAC of the token (not the token) and redirects to the same
  page without it; :class:`~clisight.server.app.Guard` accepts that cookie in place of the
  ``Authorization`` header on everything but the OTLP endpoints.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import MutableMapping
from typing import Any, Final

CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS: Final = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
CSRF_COOKIE: Final = "clisight_csrf"
CSRF_FIELD: Final = "csrf"
SESSION_COOKIE: Final = "clisight_session"
_NONCE_HEX: Final = 32


class SecurityHeaders:
    """ASGI middleware: :data:`HEADERS` on every HTTP response of the app it wraps."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = kept + list(HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Csrf:
    """Signed double-submit tokens under a per-process secret."""

    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret if secret is not None else secrets.token_bytes(32)

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_hex(_NONCE_HEX // 2)

    @staticmethod
    def well_formed(nonce: str | None) -> bool:
        return nonce is not None and len(nonce) == _NONCE_HEX and all(c in "0123456789abcdef" for c in nonce)

    def token(self, nonce: str) -> str:
        return hmac.new(self.secret, nonce.encode(), hashlib.sha256).hexdigest()

    def check(self, nonce: str | None, token: str | None) -> bool:
        """Whether ``token`` (the form's) was made for ``nonce`` (the cookie's) by this process."""
        if not self.well_formed(nonce) or not token:
            return False
        assert nonce is not None
        return hmac.compare_digest(self.token(nonce).encode(), token.encode("utf-8", "replace"))


def session_value(token: str) -> str:
    """What the login cookie holds for a server token: an HMAC of it, so the cookie is not the token."""
    return hmac.new(token.encode(), b"clisight dashboard session", hashlib.sha256).hexdigest()


def cookie_header(name: str, value: str, max_age: int | None = None) -> str:
    age = f"; Max-Age={max_age}" if max_age is not None else ""
    return f"{name}={value}; Path=/; HttpOnly; SameSite=Strict{age}"
