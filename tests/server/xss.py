"""Hostile data for the dashboard's tests: 50 XSS payloads, and OTLP/JSON bodies that carry them
as log messages, attribute keys and values, service names, span names and exception types.

Each payload that could run sets ``window.__xss`` (or opens a dialog): a test that finds either
has found script running that came from data.
"""

from __future__ import annotations

import time
from typing import Any

XSS_PAYLOADS: tuple[str, ...] = (
    "<script>window.__xss=1</script>",
    "<img src=x onerror=window.__xss=2>",
    '<img src="x" onerror="alert(1)">',
    "<svg onload=window.__xss=3>",
    "<svg><script>window.__xss=4</script></svg>",
    "<body onload=window.__xss=5>",
    "<iframe src=javascript:window.parent.__xss=6></iframe>",
    '"><script>window.__xss=7</script>',
    "'><img src=x onerror=window.__xss=8>",
    "</title><script>window.__xss=9</script>",
    "</textarea><script>window.__xss=10</script>",
    "</style><script>window.__xss=11</script>",
    '<a href="javascript:window.__xss=12">x</a>',
    "<details open ontoggle=window.__xss=13>",
    "<input autofocus onfocus=window.__xss=14>",
    "<video><source onerror=window.__xss=15></video>",
    "<audio src=x onerror=window.__xss=16>",
    "<object data=javascript:window.__xss=17>",
    "<embed src=javascript:window.__xss=18>",
    "<math><mtext><script>window.__xss=19</script></mtext></math>",
    "<marquee onstart=window.__xss=20>",
    '<div style="background:url(javascript:window.__xss=21)">',
    "<base href=//evil.example/>",
    '<meta http-equiv="refresh" content="0;url=javascript:window.__xss=22">',
    "<link rel=import href=data:text/html,<script>window.__xss=23</script>>",
    "javascript:window.__xss=24",
    "{{ 7*7 }}<script>window.__xss=25</script>",
    "{% raw %}<script>window.__xss=26</script>",
    "${window.__xss=27}",
    "<scr<script>ipt>window.__xss=28</scr</script>ipt>",
    "<SCRIPT SRC=data:,window.__xss=29></SCRIPT>",
    "<img src=x:x onerror=&#x77;indow.__xss=30>",
    "&lt;script&gt;window.__xss=31&lt;/script&gt;",
    "<svg><animate onbegin=window.__xss=32 attributeName=x dur=1s>",
    "<svg><a xlink:href=javascript:window.__xss=33><text>x</text></a></svg>",
    "<form action=javascript:window.__xss=34><button>go</button></form>",
    "<isindex action=javascript:window.__xss=35 type=submit>",
    "<table background=javascript:window.__xss=36>",
    "<img src=`x`onerror=window.__xss=37>",
    '" onmouseover="window.__xss=38" x="',
    "' onfocus='window.__xss=39' autofocus x='",
    "\u2028<script>window.__xss=40</script>",
    "\x00<script>window.__xss=41</script>",
    '<noscript><p title="</noscript><img src=x onerror=window.__xss=42>">',
    "<template><script>window.__xss=43</script></template><img src=x onerror=window.__xss=43>",
    "<style>@import 'javascript:window.__xss=44';</style>",
    "<svg><foreignObject><iframe srcdoc='<script>parent.__xss=45</script>'></iframe></foreignObject></svg>",
    "data:text/html,<script>window.__xss=46</script>",
    "<img srcset=x onerror=window.__xss=47>",
    "</script><script>window.__xss=48</script>",
)
assert len(XSS_PAYLOADS) == 50, len(XSS_PAYLOADS)


def _attrs(pairs: dict[str, str]) -> list[dict[str, Any]]:
    return [{"key": k, "value": {"stringValue": v}} for k, v in pairs.items()]


def log_body(
    messages: list[str],
    service: str = "xss-test",
    attributes: dict[str, str] | None = None,
    severity: int = 9,
    time_ns: int | None = None,
    event_name: str = "",
) -> dict[str, Any]:
    """An OTLP/JSON ``ExportLogsServiceRequest`` with one record per message."""
    now = time_ns if time_ns is not None else time.time_ns()
    records = [
        {
            "timeUnixNano": str(now + i),
            "severityNumber": severity,
            "severityText": "ERROR" if severity >= 17 else "INFO",
            "body": {"stringValue": message},
            "attributes": _attrs(attributes or {}),
            **({"eventName": event_name} if event_name else {}),
        }
        for i, message in enumerate(messages)
    ]
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": _attrs({"service.name": service})},
                "scopeLogs": [{"scope": {"name": "xss"}, "logRecords": records}],
            }
        ]
    }


def span_body(trace_id: str, names: list[str], service: str, attributes: dict[str, str]) -> dict[str, Any]:
    """An OTLP/JSON ``ExportTraceServiceRequest``: a root span and one child per further name."""
    now = time.time_ns()
    spans = []
    for i, name in enumerate(names):
        spans.append(
            {
                "traceId": trace_id,
                "spanId": f"{i + 1:016x}",
                "parentSpanId": "" if i == 0 else f"{1:016x}",
                "name": name,
                "kind": 1,
                "startTimeUnixNano": str(now - 5_000_000 + i * 100_000),
                "endTimeUnixNano": str(now - 1_000_000),
                "attributes": _attrs(attributes),
                "status": {"code": 2 if i % 7 == 3 else 1},
            }
        )
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attrs({"service.name": service})},
                "scopeSpans": [{"scope": {"name": "xss"}, "spans": spans}],
            }
        ]
    }


def hostile_bodies(trace_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(``/v1/...`` path, JSON body) pairs placing every payload in every place the pages show."""
    out: list[tuple[str, dict[str, Any]]] = []
    for i, payload in enumerate(XSS_PAYLOADS):
        attrs = {payload: payload, "n": str(i)}
        out.append(("/v1/logs", log_body([payload], service=payload, attributes=attrs)))
        # An error occurrence: exception attributes on an ERROR log.
        error_attrs = {"exception.type": f"Xss{i}Error{payload}", "exception.message": payload}
        error_attrs["exception.stacktrace"] = f"Traceback:\n  File {payload}\n{payload}"
        out.append(("/v1/logs", log_body([payload], service=payload, attributes=error_attrs, severity=17)))
        # A usage event named by the payload (the usage page charts events by name).
        out.append(("/v1/logs", log_body([payload], service=payload, severity=0, event_name=payload)))
    out.append(
        ("/v1/traces", span_body(trace_id, list(XSS_PAYLOADS), XSS_PAYLOADS[0], {XSS_PAYLOADS[1]: "v"}))
    )
    return out
