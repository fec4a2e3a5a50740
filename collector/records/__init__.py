"""Service records beside the reports: customers' sign-offs, record kinds, documents, analysis.

- :mod:`.signoff`: one-time sign-off links and the page a customer's contact signs on;
- :mod:`.i18n`: the records' labels in both languages (on top of the reports' catalogue).
"""

RECORD_KINDS = ("inspection", "fault", "emergency", "repair", "routine", "upgrade", "analysis")
"""Every kind of stored record (the ``reports`` table's ``kind``)."""

__all__ = ["RECORD_KINDS"]
