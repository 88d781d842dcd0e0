"""The protocol's reads for the SQL backends, written once: a backend gives its dialect and a way to
run a query (:meth:`SqlReads._sql_read`, ``?`` placeholders); this turns ``rows`` and ``aggregate``
into the statements of ``_sql`` and their results into export dicts and merged aggregates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from clisight._sketch import QuantileSketch
from clisight.store import _aggregate, _sql
from clisight.store.base import Page, Selection


class SqlReads:
    """``rows``, ``aggregate`` and the session/trace lookups they need, for a SQL backend.

    Hooks a backend may override: :meth:`_encoded` (a selection's text as the backend stores it),
    :meth:`_export` (a selected row as its export dict) and :meth:`_decoded` (a group value read
    back).
    """

    dialect: ClassVar[_sql.Dialect]

    def _sql_read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    def _encoded(self, sel: Selection) -> Selection:
        return sel

    def _decoded(self, value: Any) -> Any:
        return value

    def _export(self, kind: str, row: Sequence[Any]) -> dict[str, Any]:
        return _sql.to_export(kind, row)

    def _resolve(self, sel: Selection) -> _sql.Resolved:
        """The session and trace ``sel`` names, as row numbers and time spans (one lookup each)."""
        session = trace = None
        if sel.session_id is not None:
            rows = self._sql_read(
                "SELECT sid, first_ns, last_ns FROM sessions WHERE id = ?", (sel.session_id,)
            )
            if rows and rows[0][1] is not None:
                session = _sql.SessionBounds(*rows[0])
        if sel.trace_id is not None:
            rows = self._sql_read("SELECT tid, first_ns, last_ns FROM traces WHERE id = ?", (sel.trace_id,))
            if rows:
                trace = _sql.SessionBounds(*rows[0])
        return _sql.Resolved(session, trace)

    def rows(
        self,
        kind: str,
        sel: Selection,
        *,
        cursor: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> Page:
        sel = self._encoded(sel)
        sql, params = _sql.rows_query(
            self.dialect, kind, sel, self._resolve(sel), cursor, max(limit, 0), newest_first
        )
        found = self._sql_read(sql, params)
        if not found:
            return Page([], cursor)
        return Page(
            [self._export(kind, row) for row in found],
            _sql.next_cursor(kind, found[-1], newest_first),
        )

    def aggregate(
        self,
        kind: str,
        sel: Selection,
        group_by: Sequence[str] = (),
        measures: Sequence[str] = ("count",),
        *,
        source: str = "auto",
    ) -> list[dict[str, Any]]:
        sel = self._encoded(sel)
        out = _aggregate.answer(
            kind,
            sel,
            group_by,
            measures,
            source,
            lambda plan, parsed: self._rollup_aggregate(plan, group_by, parsed),
            lambda part, parsed: self._raw_aggregate(kind, part, group_by, parsed),
        )
        for row in out:
            for group in group_by:
                row[group] = self._decoded(row[group])
        return out

    def _raw_aggregate(
        self, kind: str, sel: Selection, group_by: Sequence[str], measures: Sequence[_aggregate.Measure]
    ) -> list[dict[str, Any]]:
        sql, params, python = _sql.raw_aggregate_query(
            self.dialect, kind, sel, self._resolve(sel), group_by, measures
        )
        found = self._sql_read(sql, params)
        if python:
            names = [*group_by, *_sql.python_fields(measures)]
            if "time" not in names:
                names.append("time")
                found = [(*row, 0) for row in found]
            rows = (dict(zip(names, row, strict=True)) for row in found)
            return _aggregate.python_aggregate(rows, group_by, measures)
        keys = [*group_by, *(m.text for m in measures)]
        return [dict(zip(keys, row, strict=True)) for row in found]

    def _rollup_aggregate(
        self, plan: _aggregate.RollupPlan, group_by: Sequence[str], measures: Sequence[_aggregate.Measure]
    ) -> list[dict[str, Any]]:
        sql, params, sketch_sql = _sql.rollup_query(self.dialect, plan, group_by, measures)
        keys = [*group_by, *(m.text for m in measures)]
        # The last column counts the cells read: an ungrouped query over none still returns a row.
        out = [dict(zip(keys, row[:-1], strict=True)) for row in self._sql_read(sql, params) if row[-1]]
        for row in out:
            for m in measures:
                if m.op in ("count", "errors") and row[m.text] is None:
                    row[m.text] = 0
                elif m.field == "severity" and row[m.text] is not None:
                    row[m.text] = int(row[m.text])
                elif m.op == "sum" and row[m.text] is None:
                    row[m.text] = 0.0
        if sketch_sql is not None:
            sketches: dict[tuple[Any, ...], QuantileSketch] = {}
            for cell in self._sql_read(sketch_sql, params):
                group = tuple(cell[:-1])
                merged = sketches.get(group)
                if merged is None:
                    merged = sketches[group] = QuantileSketch()
                merged.merge(QuantileSketch.from_bytes(bytes(cell[-1])))
            for row in out:
                sketch = sketches.get(tuple(row[g] for g in group_by))
                for m in measures:
                    if m.op == "quantiles":
                        row[m.text] = sketch
        return out
