"""Time: cron schedules, time zones and maintenance windows, shared by emergency detection,
inspections and reports."""
