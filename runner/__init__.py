"""ML Warehouse runner: the database, dbt, migrations, retention, checks and the writer."""

__version__ = "0.1.0"
