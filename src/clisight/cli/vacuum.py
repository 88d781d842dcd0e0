"""``clisight vacuum``: apply retention (age and size limits) to the store and say what was deleted."""

from __future__ import annotations

import dataclasses

import click

from clisight import _config
from clisight.cli._common import FiniteFloatRange, console, echo_json, json_option, open_store, store_option
from clisight.cli._text import clean, size
from clisight.query import RetentionPolicy

EPILOG = """\b
Examples:
  clisight vacuum                          use retention_days and retention_max_mb from the config
  clisight vacuum --max-age-days 7
  clisight vacuum --max-mb 100 --json

0 means no limit.  Retention also runs automatically, at most daily, in programs using clisight.
"""


@click.command(epilog=EPILOG)
@click.option(
    "--max-age-days",
    type=FiniteFloatRange(0),
    default=None,
    metavar="D",
    help="Delete records older than D days (default: retention_days).",
)
@click.option(
    "--max-mb",
    type=FiniteFloatRange(0),
    default=None,
    metavar="M",
    help="Then delete the oldest records until the store is under M megabytes (default: retention_max_mb).",
)
@store_option
@json_option
def vacuum(max_age_days: float | None, max_mb: float | None, store: str | None, as_json: bool) -> None:
    """Delete old records (retention).

    First records older than the age limit, then the oldest until the store fits the size limit;
    prints how many records of each kind were deleted.
    """
    config = _config.resolve()
    days = config["retention_days"] if max_age_days is None else max_age_days
    megabytes = config["retention_max_mb"] if max_mb is None else max_mb
    policy = RetentionPolicy(
        raw_days=days,
        minute_days=config["rollup_minute_days"],
        hour_days=config["rollup_hour_days"],
        day_days=config["rollup_day_days"],
        max_bytes=int(megabytes * 1024 * 1024),
    )
    with open_store(store, writes=True).query as query:
        result = query.vacuum(policy)
        url = query.url
    if as_json:
        echo_json(
            {
                "store": url,
                "max_age_days": days,
                "max_mb": megabytes,
                **dataclasses.asdict(result),
                "total_deleted": result.total_deleted,
            }
        )
        return
    out = console()
    limits = f"older than {days:g} days" if days else "no age limit"
    limits += f", size limit {megabytes:g} MB" if megabytes else ", no size limit"
    deleted = ", ".join(f"{table} {n:,}" for table, n in result.deleted.items() if n) or "nothing"
    out.print(f"Retention ({limits}) on {clean(url)}", markup=False)
    out.print(f"Deleted: {deleted} ({result.total_deleted:,} records)", markup=False)
    out.print(
        f"Size: {size(result.bytes_before)} -> {size(result.bytes_after)} in {result.seconds:.1f} s",
        markup=False,
    )
