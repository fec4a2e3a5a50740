"""Migration revisions (Alembic skips this file when scanning for revisions)."""
