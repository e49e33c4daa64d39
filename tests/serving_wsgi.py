"""A test-only WSGI entry for tests/test_serving.py: the real app plus one slow URL.

GET /_test/slow writes the file named by GRIDGOV_TEST_SLOW_MARKER (so the test knows the
request is in flight), sleeps GRIDGOV_TEST_SLOW_SECONDS, then is answered as GET /healthz.
Nothing of this is part of the app.
"""

import os
import time
from pathlib import Path

from wsgi import app as gridgov_app


def app(environ, start_response):
    """The gridgov app, with /_test/slow held for a while before it reaches /healthz."""
    if environ.get("PATH_INFO") == "/_test/slow":
        Path(os.environ["GRIDGOV_TEST_SLOW_MARKER"]).write_text("in flight\n")
        time.sleep(float(os.environ.get("GRIDGOV_TEST_SLOW_SECONDS", "2")))
        environ = {**environ, "PATH_INFO": "/healthz"}
    return gridgov_app(environ, start_response)
