"""production package: machine states, shift calendars, ISO 22400 KPIs, losses, alarms."""
