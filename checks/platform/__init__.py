"""Platform layer checks."""
