"""What a read covers: the :class:`Filter` every query takes; parsers for the CLI's time and level words."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from clisight.exceptions import DataError
from clisight.store.base import Selection
from clisight.types import SEVERITY_NUMBERS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_DATE_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}([t ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(z|[+-]\d{2}:\d{2})?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def to_ns(moment: datetime | int) -> int:
    """Nanoseconds since the epoch; an ``int`` is taken as nanoseconds already, a naive datetime as local."""
    if isinstance(moment, int):
        return moment
    aware = moment if moment.tzinfo is not None else moment.astimezone()
    return (aware - _EPOCH) // timedelta(microseconds=1) * 1000


def parse_time(text: str, now: datetime | None = None) -> int:
    """A CLI time word as nanoseconds since the epoch.

    Accepts a duration ago (``30s``, ``15m``, ``2h``, ``7d``, ``1w``), ``now``, an ISO 8601 date or
    date-time (naive means local time), or an integer of nanoseconds.  Raises DataError otherwise.
    """
    word = text.strip().lower()
    now = now or datetime.now(UTC)
    try:
        if word == "now":
            found = to_ns(now)
        elif match := _AGO.match(word):
            found = to_ns(now - timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)]))
        elif word.isdigit():
            found = int(word)
        else:
            found = _iso_ns(datetime.fromisoformat(text.strip()))
    except OverflowError:  # 1000000d ago: before year 1
        found = -1
    except ValueError as exc:
        if _DATE_SHAPE.match(word):  # the form is right: say what is wrong with the date itself
            raise DataError(f"cannot read time {text!r}: {exc} (no such date or time)") from None
        raise DataError(
            f"cannot read time {text!r}: expected a duration ago (15m, 2h, 7d), 'now', "
            "an ISO date such as 2024-05-01 or 2024-05-01T12:00, or nanoseconds since the epoch"
        ) from None
    if not 0 <= found < 2**63:  # what a store can hold: 1970 to 2262
        raise DataError(f"time {text!r} is out of range: clisight keeps times from 1970 to 2262")
    return found


def _iso_ns(moment: datetime) -> int:
    """An ISO date-time read by fromisoformat as nanoseconds, -1 for one whose local time cannot
    be placed (0001-01-01 is before year 1 in UTC east of Greenwich): out of range, not unreadable."""
    try:
        return to_ns(moment)
    except (OverflowError, ValueError):
        return -1


def parse_level(level: int | str) -> int:
    """A level name (``debug``, ``INFO``, ``warn``, ``performance``...) or number as a severity number."""
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    word = str(level).strip().upper()
    if word.isdigit():
        return int(word)
    if word in SEVERITY_NUMBERS:
        return SEVERITY_NUMBERS[word]
    names = ", ".join(sorted(SEVERITY_NUMBERS))
    raise DataError(f"unknown level {level!r}: expected a severity number or one of {names}")


@dataclass(frozen=True, slots=True)
class Filter:
    """Which records a query covers; ``None`` means "no constraint", bounds are inclusive.

    - ``since``/``until``: a datetime (naive = local time) or nanoseconds since the epoch.
    - ``service``, ``session``: exact service name, exact session id.
    - ``level``: minimum log severity (a name or number); logs only.
    - ``component``: exact logger/component name; logs only.
    - ``name``: exact event, span or metric name, or error type.
    - ``text``: case-insensitive substring of a log or error message.
    - ``limit``: most rows a listing (tail, export) returns.
    """

    since: datetime | int | None = None
    until: datetime | int | None = None
    service: str | None = None
    session: str | None = None
    level: int | str | None = None
    component: str | None = None
    name: str | None = None
    text: str | None = None
    limit: int | None = None

    def selection(self) -> Selection:
        """The store-level selection for this filter (times in ns, level as a number)."""
        return Selection(
            since_ns=None if self.since is None else to_ns(self.since),
            until_ns=None if self.until is None else to_ns(self.until),
            service=self.service,
            session_id=self.session,
            min_severity=None if self.level is None else parse_level(self.level),
            component=self.component,
            name=self.name,
            text=self.text or None,
        )
