"""Remote sessions, collector side: the relay between engineers' WebSockets and agents'
streams (:mod:`.relay`), grants and revocations sent to agents, and expiry."""
