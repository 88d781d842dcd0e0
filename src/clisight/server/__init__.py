"""``clisight serve``: the OTLP/HTTP receiver (and, later, the REST API and dashboard).

Nothing here is imported by ``import clisight``: the server's dependencies (Starlette, uvicorn,
opentelemetry-proto) are the ``server`` extra, loaded only by the ``serve`` command and its tests.
"""
