"""Network layer checks."""
