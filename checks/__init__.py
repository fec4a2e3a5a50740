"""The check library: five layers of inspection checks, knowing nothing of gRPC or storage."""
