"""Operator tools outside the app package: the private PostgreSQL cluster and the backup check.

create_app never imports these (an import-linter contract in pyproject.toml keeps it so);
wsgi.py, scripts/, tests and benchmarks import them when they need a database of their own.
"""
