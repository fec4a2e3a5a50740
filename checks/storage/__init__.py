"""Storage layer checks."""
