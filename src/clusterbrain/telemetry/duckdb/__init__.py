"""duckdb package."""
