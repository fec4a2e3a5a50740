"""Application layer checks."""
