"""The garbage collector's settings in ``clisight serve``'s processes (the server and its workers).

A receiver allocates container objects by the thousand a request (a dict and a tuple a span, the
rows waiting in the write queue), few of them in reference cycles.  With CPython's default
thresholds (a young collection every 700 net allocations) it runs dozens of young collections a
request, and the rows that wait in the queue through them are promoted, so full collections follow
that walk every module, class and template the process loaded at start.  So, once started:

- everything alive is frozen (``gc.freeze``): the start-up heap is never walked again;
- a young collection runs every ``YOUNG_THRESHOLD`` net allocations: about once or twice per request
  of 512 spans, instead of dozens.  Cycles are still collected; their memory waits a little longer.

Only ``clisight serve`` calls :func:`tune`: the client library never touches its host's collector.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 50_000


def tune() -> None:
    """Freeze what is alive now and collect young objects every ``YOUNG_THRESHOLD`` allocations."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
