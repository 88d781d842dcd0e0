"""The documentation lists what the code has: it cannot drift silently."""

from __future__ import annotations

from pathlib import Path

from clisight._config import PARAMS

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_configuration_page_lists_every_parameter_and_its_variable() -> None:
    text = (DOCS / "configuration.md").read_text()
    for param in PARAMS:
        assert f"`{param.name}`" in text and f"`{param.env}`" in text, param.name
