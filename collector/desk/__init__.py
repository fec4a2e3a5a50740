"""The service desk: business calendars, SLA clocks and their sweep (issue 14)."""
