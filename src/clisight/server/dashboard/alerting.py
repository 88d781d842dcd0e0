"""The alerts page's reads and forms, over ``clisight.alerts`` when it is installed."""

from __future__ import annotations

from typing import Any

from clisight.query import Query
from clisight.server.dashboard import data


class AlertsView:
    """Rule states, history and silences of the alert engine, as the alerts page shows them."""

    def __init__(self, query: Query) -> None:
        self.query = query
        self.available = False

    def firing(self) -> list[Any]:
        return []

    def states(self) -> list[Any]:
        return []

    def silences(self) -> list[Any]:
        return []

    def history(self) -> list[Any]:
        return []

    def series_source(self) -> data.SeriesSource:
        return data.series_values

    def silence_from_form(self, form: dict[str, str]) -> None:
        raise ValueError("alerting is not available in this build")

    def unsilence_from_form(self, form: dict[str, str]) -> None:
        raise ValueError("alerting is not available in this build")
