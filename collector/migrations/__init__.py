"""Alembic migrations of the collector store, shipped as package data.

They run through :func:`collector.store.migrate.upgrade` (``diag-collector migrate``, or
:meth:`collector.store.Store.open`): a programmatic Alembic config points
``script_location`` here, so no ``alembic.ini`` is needed at runtime.
"""
