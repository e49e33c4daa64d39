"""WSGI entry point: `gunicorn wsgi:app`."""

from gridgov import create_app

app = create_app()
