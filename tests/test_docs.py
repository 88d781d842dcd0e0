"""The documentation lists what the code has: it cannot drift silently."""

from __future__ import annotations

from pathlib import Path

from clisight._config import PARAMS

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_configuration_page_lists_every_parameter_and_its_variable() -> None:
    text = (DOCS / "configuration.md").read_text()
    for param in PARAMS:
        assert f"`{param.name}`" in text and f"`{param.env}`" in text, param.name


def test_store_page_documents_every_export_field_of_every_kind() -> None:
    from clisight.store.base import EXPORT_FIELDS

    page = (DOCS / "store.md").read_text()
    section = page.split("### Export schema", 1)[1].split("###", 1)[0]
    rows = {
        line.split("|")[1].strip(" `"): line.split("|")[2]
        for line in section.splitlines()
        if line.startswith("| `")
    }
    assert set(rows) == set(EXPORT_FIELDS)
    for kind, fields in EXPORT_FIELDS.items():
        assert [f.strip(" `") for f in rows[kind].split(",")] == list(fields), kind
