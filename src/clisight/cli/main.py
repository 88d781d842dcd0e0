"""The ``clisight`` command: a click group with one module per command (or small family).

Commands register here; ``main`` is the console-script entry point declared in pyproject.toml.
"""

from __future__ import annotations

import click

from clisight import __version__
from clisight.cli._common import ClisightGroup
from clisight.cli.alerts import alerts
from clisight.cli.demo import demo
from clisight.cli.detect import detect
from clisight.cli.doctor import doctor
from clisight.cli.errors import errors
from clisight.cli.export import export
from clisight.cli.insights import insights
from clisight.cli.perf import perf
from clisight.cli.report import report
from clisight.cli.serve import serve
from clisight.cli.tail import tail
from clisight.cli.top import top
from clisight.cli.traces import traces
from clisight.cli.usage import usage
from clisight.cli.vacuum import vacuum

EPILOG = """\b
Examples:
  clisight demo                      write a simulated AI-assistant CLI workload
  clisight report --since 7d         errors, slow operations, usage and LLM cost
  clisight tail -f --level warning   follow new warnings and errors live
  clisight export --format csv --kind events -o events.csv
  clisight perf --since 1d           operations: count, p50/p95/p99, breaches, resource peaks
  clisight errors                    error groups with trends; `errors show ID` for one
  clisight doctor                    configuration, store and what is collected
  clisight usage daily --breakdown   LLM tokens and cost per day and model
  clisight insights --days 7         commands, activity, cost trends and what changed
  clisight serve                     receive OpenTelemetry (OTLP/HTTP) on 127.0.0.1:4318
  clisight traces show ID            one trace's spans as a waterfall
  clisight top                       live terminal dashboard (pip install 'clisight[tui]')
  clisight alerts check              evaluate the alert rules once; exit 1 if one fires

\b
The store is the configured one (CLISIGHT_STORE, [tool.clisight] store = ..., or the
default file in the user data directory) unless --store URL is given.
"""


@click.group(cls=ClisightGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="clisight", message="%(prog)s %(version)s")
def cli() -> None:
    """Local-first observability for command-line programs: read what your CLI recorded."""


COMMANDS = (demo, tail, report, perf, errors, usage, insights, traces, detect, export, vacuum, doctor, serve)
for command in COMMANDS:
    cli.add_command(command)
# Registered apart from COMMANDS' line, which parallel branches also extend.
cli.add_command(top)
cli.add_command(alerts)


def main() -> None:
    """Entry point of the ``clisight`` console script."""
    # click turns a closed pipe (`clisight export | head`) into a quiet exit, and our errors into messages.
    cli.main(prog_name="clisight")


if __name__ == "__main__":  # pragma: no cover
    main()
