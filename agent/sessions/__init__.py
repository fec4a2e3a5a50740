"""Remote sessions, the agent's side: time-boxed SSH access for one engineer's key.

Importing this package is cheap (it imports nothing). What each module holds:

- :mod:`agent.sessions.settings`: the ``sessions:`` config section (pydantic, strict);
- :mod:`agent.sessions.frames`: the session frames of ``diag.v1`` on the wire, by hand
  (as :mod:`agent.wire` does for the rest);
- :mod:`agent.sessions.grants`: a grant, the agent's decision about it (pure) and the
  grant store in the state directory;
- :mod:`agent.sessions.manager`: what the streamer hands every session frame to; it
  answers with SessionStatus and owns the streams. :class:`Refuser` is the whole of it
  for an agent whose config leaves sessions disabled;
- :mod:`agent.sessions.relay`: one SSH connection carried over the agent's stream
  (socket pair, windows);
- :mod:`agent.sessions.server`: the paramiko SSH server (auth, shell, exec, sftp) and
  :mod:`agent.sessions.allowlist` for diagnostic mode;
- :mod:`agent.sessions.recording`: asciicast v2 recordings, spooled in chunks;
- :mod:`agent.sessions.control`: the local control socket and ``diag-agent sessions``.

paramiko, cryptography and the SSH server load only once a grant is approved
(:mod:`agent.sessions.server` is imported lazily), so an idle agent pays nothing for them.
"""
