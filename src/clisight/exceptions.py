"""Every error clisight lets a user see, in one tree.

::

    ClisightError                 base of everything below; catch this to catch them all
    ├── ConfigError               a configuration value is invalid (names parameter, source, allowed values)
    │   └── AlertRulesError       an alert rules file has mistakes (names file, line and reason of each)
    ├── StoreError                the store cannot be opened, read or migrated
    │   ├── UnsupportedStoreURL   the store URL's scheme is not one clisight knows
    │   └── SchemaError           the database's schema is newer than this clisight, or damaged
    ├── DataError                 input data (a CSV, an OTLP body...) is malformed; says where
    └── SinkRejected              a sink's destination refused records for good (an OTLP 400)

    ConfigWarning (a UserWarning) a configuration value from the environment or pyproject.toml was
                                  invalid; ``clisight.init`` used the default instead of failing

The client API never raises these into the host program: the pipeline counts its own failures
(see ``clisight.pipeline_stats()``).  They surface in the ``clisight`` command, the server and
in explicit calls such as ``clisight.testing`` helpers.
"""

from __future__ import annotations


class ClisightError(Exception):
    """Base class of every error clisight raises on purpose."""


class ConfigError(ClisightError, ValueError):
    """A configuration value is invalid.

    The message names the parameter, where the value came from and what is allowed.
    """

    def __init__(
        self, parameter: str, source: str, value: object, allowed: str, *, message: str | None = None
    ) -> None:
        self.parameter = parameter
        self.source = source
        self.value = value
        self.allowed = allowed
        super().__init__(
            message or f"invalid value {value!r} for {parameter!r} (from {source}): expected {allowed}"
        )


class AlertRulesError(ConfigError):
    """An alert rules file (``alerts_file``, ``--rules``) was refused whole: ``path``, ``line`` (1-based;
    0 when the file itself cannot be read) and ``reason`` of the first mistake, ``more`` the others as
    ``file:line: reason`` texts."""

    def __init__(self, path: str, line: int, reason: str, more: list[str] | None = None) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        self.more = list(more or [])
        self.parameter = "alerts_file"
        self.source = path
        self.value = path
        self.allowed = "a valid rules file (see docs/alerts.md)"
        where = f"{path}:{line}" if line else path
        text = "\n".join([f"{where}: {reason}", *self.more])
        ValueError.__init__(self, text)


class StoreError(ClisightError):
    """The store cannot be opened, read, written or migrated."""


class UnsupportedStoreURL(StoreError, ValueError):
    """The store URL names a backend clisight does not have."""


class SchemaError(StoreError):
    """The database schema is newer than this version of clisight understands, or damaged."""


class DataError(ClisightError, ValueError):
    """Input data is malformed; the message says where (file, line, field)."""


class SinkRejected(ClisightError):
    """A sink's destination refused ``rejected`` records of a batch for good (an OTLP collector's
    400, or its ``partial_success``): the pipeline counts them dropped and the rest stored, and
    never sends the batch again."""

    def __init__(self, rejected: int, reason: str) -> None:
        self.rejected = rejected
        super().__init__(reason)


class ConfigWarning(UserWarning):
    """``clisight.init`` ignored an invalid value from the environment or pyproject.toml.

    The message is the :class:`ConfigError` text (parameter, source, what is allowed); the parameter
    kept its default.  ``clisight doctor`` reports the same problem as an error.
    """
