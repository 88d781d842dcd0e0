"""Cumulative OTLP series kept across ``clisight serve`` restarts.

The receiver turns each point of a cumulative sum, histogram or summary into the increase since the
previous point of its series (:meth:`clisight.server.otlp.Mapper._delta`), which needs that previous
point.  :class:`CumulativeState` keeps the mapper's table of them (start time and last total per
series, at most ``max_series``) in the store's key-value state, through the query layer:

- :meth:`CumulativeState.load` at start: a point whose start time equals the saved one continues
  its series (only its growth is counted); a later start time is a new stream, counted whole.
- :meth:`CumulativeState.start` saves what changed every ``interval`` seconds in a thread, and
  :meth:`CumulativeState.stop` once more at the end, after the server stopped taking requests.

Stored under ``otlp:cumulative:<00..ff>`` (the series by the first two hex digits of their key, so a
save writes only the buckets that changed, a series dropped from the table leaves its bucket's next
save) and ``otlp:cumulative:meta`` (``{"clean": bool}``: whether the last server stopped cleanly).
A series is stored as a hash of its resource, name and attributes, never the values themselves.

If the process is killed between saves (kill -9, a crash, power loss), the series that reported in
the last ``interval`` seconds resume from their saved total, so the growth between that save and the
kill, stored already, is counted once more: at most one interval's growth, once per series.  That
was chosen over dropping such a series' next increase (which loses all the growth while the server
was down, however long) or starting it afresh (which counts its whole history again, as before
the state was kept); :meth:`CumulativeState.load` says when the last stop was not clean.
"""

from __future__ import annotations

import logging
import threading
from typing import Final

from clisight.query import Query
from clisight.server.otlp import CUMULATIVE_BUCKETS, Mapper

PREFIX: Final = "otlp:cumulative:"
META_KEY: Final = PREFIX + "meta"
FORMAT: Final = 1
DEFAULT_INTERVAL_S: Final = 5.0

log = logging.getLogger("clisight.server")


class CumulativeState:
    """Loads, periodically saves and finally saves a :class:`Mapper`'s cumulative series."""

    def __init__(self, mapper: Mapper, query: Query, interval: float = DEFAULT_INTERVAL_S) -> None:
        self.mapper = mapper
        self.query = query
        self.interval = interval
        self.saves = 0
        self.failures = 0
        self.unclean = False  # the server before this one did not stop cleanly
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clisight-cumulative", daemon=True)

    def load(self) -> int:
        """Take in the saved series; how many.  Notes (``unclean``) whether the last stop was clean,
        and marks this run as not (yet) stopped cleanly."""
        taken = 0
        for bucket in CUMULATIVE_BUCKETS:
            saved = self.query.load_state(PREFIX + bucket)
            if (
                isinstance(saved, dict)
                and saved.get("format") == FORMAT
                and isinstance(saved.get("series"), dict)
            ):
                taken += self.mapper.restore_cumulative(saved["series"])
        meta = self.query.load_state(META_KEY)
        self.unclean = isinstance(meta, dict) and meta.get("clean") is False
        self.query.save_state(META_KEY, {"clean": False})
        return taken

    def save(self) -> int:
        """Write the buckets that changed since the last save; how many.  A bucket that cannot be
        written (the store busy or gone) is tried again at the next save."""
        changes = self.mapper.cumulative_changes()
        written = 0
        for bucket, series in sorted(changes.items()):
            try:
                self.query.save_state(PREFIX + bucket, {"format": FORMAT, "series": series})
            except Exception:
                self.mapper.mark_changed([b for b in changes if b >= bucket])
                raise
            written += 1
        self.saves += 1
        return written

    def start(self) -> CumulativeState:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.save()
            except Exception as exc:  # a busy or broken store must not end the saving: retried
                self.failures += 1
                log.warning("cumulative series not saved, retried in %g s: %s", self.interval, exc)

    def stop(self, timeout: float = 5.0) -> bool:
        """End the thread, save what changed and note a clean stop; False if that failed."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        try:
            self.save()
            self.query.save_state(META_KEY, {"clean": True})
        except Exception as exc:
            log.warning("cumulative series not saved at stop: %s", exc)
            return False
        return True
