"""postgres package."""
