"""Storage: the database engine, the ORM models, the Alembic migrations and the encrypted secret store."""
