"""The web dashboard of ``clisight serve``: server-rendered pages (Jinja2, autoescaped) with inline
SVG charts, live updates over Server-Sent Events, and no script or style from anywhere but this
package.  See docs/dashboard.md.

- :mod:`~clisight.server.dashboard.pages`: the routes (``dashboard_routes``) and the POST forms;
- :mod:`~clisight.server.dashboard.data`: each page's data, through the query service;
- :mod:`~clisight.server.dashboard.charts`: sparkline, line, bar and waterfall charts as SVG;
- :mod:`~clisight.server.dashboard.security`: the headers, CSRF tokens and the login cookie;
- :mod:`~clisight.server.dashboard.alerting`: the alerts page over :mod:`clisight.alerts`.

Nothing is imported here, so the server's security headers do not pull in Jinja2.
"""
