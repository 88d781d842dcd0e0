"""No raw secret reaches the database, its WAL or the JSONL file."""

from __future__ import annotations

import re
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from clisight._config import PARAMS_BY_NAME
from clisight.pipeline.redact import MAX_FIELD_CHARS, PatternRedactor
from tests.helpers import run_python

# 30 secrets of the shapes the redactor must catch (made up; none is a live credential).
SECRETS = [
    "sk-ant-api03-Zx9QeLw8Rk2Tn5Vb7Mc1Hd4Jf6Gs0Pa3Yu",
    "sk-ant-admin01-Q2w3E4r5T6y7U8i9O0pAsDfGhJkL",
    "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56",
    "sk-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90",
    "AKIAIOSFODNN7EXAMPLQ",
    "ASIAY34FZKBOKMUTVV7A",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
    "sk_live_51H8abcdefghijklmnopqrstu",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "hunter2-super-secret-pw",
    "Tr0ub4dor&3-horse-battery",
    "bob.smith@example.com",
    "alice+work@corp.example.org",
    "s3cr3t-db-passw0rd",
    "cookie-session-value-9f8e7d6c5b4a",
    "refresh-9a8b7c6d5e4f3a2b1c0d",
    "Zx9-bearer-token-value-AbCdEf123456",
    "basic-auth-pass-QwErTy",
    "dsn-password-MnBvCx",
    "client-secret-0o9i8u7y6t5r",
    "private-key-material-XYZ123456789",
    "apikey-Lk9Jh8Gf7Ds6",
    "pg-user-pass-Pq1Wo2",
    "x-api-key-value-Zz11Yy22Xx33",
    "sig-7f6e5d4c3b2a19081726354",
    "carol@example.net",
]


def test_no_raw_secret_reaches_database_wal_or_jsonl(tmp_path: Path) -> None:
    db, jsonl = tmp_path / "s.db", tmp_path / "s.jsonl"
    run_python(f"""
        import logging, clisight
        secrets = {SECRETS!r}
        clisight.init(service="sec", store={str(db)!r}, jsonl_path={str(jsonl)!r})
        log = clisight.get_logger("auth")
        std = logging.getLogger("legacy")
        std.addHandler(clisight.LoggingHandler())
        std.setLevel(logging.INFO)
        a = secrets
        # Values that carry their own shape, anywhere: message, field, nested, list, event, error.
        for s in a[:13] + [a[15], a[16], a[29]]:
            log.info(f"calling upstream with {{s}}", detail=f"header {{s}}")
            log.warning("nested", payload={{"inner": [s, {{"deep": s}}]}})
            clisight.track("llm.request", prompt=f"my key is {{s}}")
            std.info("legacy %s", s, extra={{"note": s}})
            try:
                raise ValueError(f"bad credential {{s}}")
            except ValueError:
                log.exception("failed")
        # Opaque secrets are caught by the name they travel under.
        log.info("login", password=a[13], passwd=a[14], db_password=a[17], cookie=a[18],
                 refresh_token=a[19], Authorization="Bearer " + a[20], auth=a[21],
                 dsn=a[22], client_secret=a[23], private_key=a[24], apikey=a[25],
                 connection_string=a[26], x_api_key=a[27], signature=a[28])
        log.info("url", target="postgres://admin:" + a[26] + "@db.internal/prod")
        log.info(f"password={{a[13]}} and token: {{a[19]}}")
        with clisight.session(user=a[15], token=a[19]):
            log.info("in session")
    """)
    blobs = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert any(name.endswith(".db") for name in blobs) and "s.jsonl" in blobs
    assert b"[REDACTED" in blobs["s.jsonl"]
    for name, blob in blobs.items():
        for secret in SECRETS:
            assert secret.encode() not in blob, f"{secret!r} reached {name}"


def test_counting_fields_that_mention_tokens_are_kept() -> None:
    red = PatternRedactor()
    attrs = {"input_tokens": 1200, "max_tokens": 4096, "output_tokens": 3, "token_count": 9, "token": "abc"}
    out = red.attributes(attrs)
    assert out["input_tokens"] == 1200 and out["max_tokens"] == 4096 and out["output_tokens"] == 3
    assert out["token"] == "[REDACTED]"


def test_redaction_can_be_extended_by_key_and_email_scrubbing_turned_off() -> None:
    red = PatternRedactor(extra_keys=["customer_ref"], emails=False)
    out = red.attributes({"customer_ref": "C-42", "contact": "bob@example.com"})
    assert out == {"customer_ref": "[REDACTED]", "contact": "bob@example.com"}


@given(st.text(max_size=200))
def test_text_without_secret_markers_passes_unchanged(text: str) -> None:
    red = PatternRedactor()
    if (
        "@" not in text
        and not any(
            m in text.lower()
            for m in (
                "sk-",
                "sk_",
                "rk_",
                "bearer",
                "basic",
                "token",
                "akia",
                "asia",
                "aws",
                "gh",
                "xox",
                "aiza",
                "eyj",
                "://",
                "passw",
                "pwd",
                "secret",
                "api",
                "private key",
                "agpa",
                "aida",
                "aroa",
                "anpa",
                "github_pat",
            )
        )
        and not re.search(r"[A-Za-z0-9/+]{40}", text)
    ):  # a bare 40-character key shape
        assert red.message(text) == text


@given(
    st.text(alphabet=st.characters(codec="ascii"), max_size=40),
    st.sampled_from(SECRETS[:13]),
    st.text(alphabet=" ,;.!?", max_size=3),
)
def test_shaped_secrets_are_caught_wherever_they_sit_in_text(prefix: str, secret: str, sep: str) -> None:
    red = PatternRedactor()
    assert secret not in red.message(f"{prefix} {secret}{sep} tail")


# Inputs that made a pattern retry from every position of a long run (quadratic): "eyJ-eyJ-..."
# took 15 s at 420 000 characters, a long e-mail local part without "@" minutes.
ADVERSARIAL = {
    "long run": "a" * 200_000,
    "password assignment": "password=" + "x" * 200_000,
    "jwt starts": "eyJ-" * 50_000,
    "jwt segments": "eyJa." * 40_000,
    "base64 run": "aB3/" * 50_000,
    "email local part": "a." * 100_000 + "@",
    "email domain": "a@" + "a-" * 100_000,
    "url password": "://" + "a:" * 100_000,
    "bearer": "bearer " * 30_000,
    "aws": "aws key=" * 25_000,
    "private key": "-----BEGIN PRIVATE KEY-----" * 8_000,
}


def test_every_pattern_scans_adversarial_text_in_linear_time() -> None:
    red = PatternRedactor(max_chars=10**6)  # no truncation: the patterns alone must be linear
    for name, text in ADVERSARIAL.items():
        red.message(text[:1000])  # compile the patterns this text needs outside the timing
        start = time.perf_counter()
        red.message(text)
        # ~0.1 s on a loaded 2-core machine; quadratic behaviour costs seconds to minutes.
        assert time.perf_counter() - start < 2.0, name


def test_the_redactors_default_limit_is_the_configured_default() -> None:
    assert PARAMS_BY_NAME["max_field_chars"].default == MAX_FIELD_CHARS


def test_jwt_and_email_are_still_caught_after_a_dash_or_dot() -> None:
    jwt = SECRETS[12]
    red = PatternRedactor()
    out = red.message(f"jwt-{jwt} and x.bob@example.com")
    assert jwt not in out and "bob@example.com" not in out


@given(st.text(max_size=300), st.integers(min_value=1, max_value=400))
def test_a_value_longer_than_the_limit_is_cut_and_marked(text: str, limit: int) -> None:
    out = PatternRedactor(max_chars=limit).message(text)
    if len(text) <= limit:
        assert not out.endswith(" chars]") or text.endswith(" chars]")
    else:
        assert out.endswith(f"…[truncated: {len(text)} chars]")
        assert len(out) <= limit + len(f"…[truncated: {len(text)} chars]")
