"""The ``diag-collector`` command: serve, quickstart, replay, check-plans, tokens and enrolment."""
