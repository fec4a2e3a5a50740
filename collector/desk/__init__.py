"""The service desk's services (issue 14): business calendars, SLA clocks and their sweep
(:mod:`collector.desk.calendar`, :mod:`collector.desk.sla`, :mod:`collector.desk.sweep`) and
the follow-up step (satisfaction surveys and callbacks, :mod:`collector.desk.followup`)."""
