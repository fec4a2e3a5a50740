"""diag-collector: the vendor-side server."""
