"""The web dashboard of ``clisight serve``: server-rendered pages (Jinja2, autoescaped) with inline
SVG charts, live log updates over Server-Sent Events, and no script or style from anywhere but
this package.  See docs/dashboard.md."""

from __future__ import annotations

from clisight.server.dashboard.pages import Dashboard, dashboard_routes

__all__ = ["Dashboard", "dashboard_routes"]
