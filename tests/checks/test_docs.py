from __future__ import annotations

from checks.docs import DOCS_PATH, render


def test_checks_doc_is_current():
    # Regenerate with `python -m checks.docs` after changing a check declaration.
    assert DOCS_PATH.read_text(encoding="utf-8") == render()
