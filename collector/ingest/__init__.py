"""Ingest: the agents' gRPC stream service, decoding and validating what they send, the ingest
worker processes."""
