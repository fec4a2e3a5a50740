"""The service desk's services (issue 14): the follow-up step (satisfaction surveys and
callbacks, :mod:`collector.desk.followup`)."""
