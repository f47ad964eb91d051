"""Migrations: `db upgrade` builds exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from clusterbrain.platform.db import Base, make_engine
from clusterbrain.platform.migrate import current_tables, upgrade
from clusterbrain.platform.model_registry import import_all_models


def test_upgrade_matches_models_and_is_repeatable(metadata_url: str) -> None:
    upgrade(metadata_url)
    upgrade(metadata_url)  # a second run is a no-op
    import_all_models()
    assert set(Base.metadata.tables) <= current_tables(metadata_url)
    engine = make_engine(metadata_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []
