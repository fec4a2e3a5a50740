"""HTTP side of the collector: JSON API, /healthz, /metrics (see collector.http.app)."""
