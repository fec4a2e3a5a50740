"""Host layer checks."""
