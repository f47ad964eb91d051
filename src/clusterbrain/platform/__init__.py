"""Settings, metadata database, tenancy, users, roles and tokens, errors."""
