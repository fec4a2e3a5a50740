"""``diagctl``: the engineers' CLI over the collector's HTTP API (it never opens the database)."""
