"""An app built at collection time, to enumerate routes and read the OpenAPI document.

Built like the session's `app` (same code, test config) so tests can be parametrized by route
and operation before any database exists; its database URL is never used (neither routing nor
serving the document needs one). The tests then run against the session's `app`, and
test_openapi_fuzz.py checks that both serve the same document.
"""

import functools
import re

from flask import Flask

from gridgov import create_app

UNUSED_DATABASE_URL = "postgresql://unused@127.0.0.1:1/unused"
# <converter(args):name> → {name}, as in the OpenAPI document.
_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@functools.cache
def document_app() -> Flask:
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": UNUSED_DATABASE_URL})


@functools.cache
def openapi_document() -> dict:
    return document_app().test_client().get("/api/v1/openapi.json").get_json()


def openapi_path(rule: str) -> str:
    """/api/v1/users/<id32:user_id> → /api/v1/users/{user_id}."""
    return _RULE_ARGUMENT.sub(r"{\1}", rule)


def fill_rule(rule: str, values: dict[str, str]) -> str:
    """The URL of `rule` with each argument replaced by its (already quoted) value."""
    return _RULE_ARGUMENT.sub(lambda match: values[match.group(1)], rule)
