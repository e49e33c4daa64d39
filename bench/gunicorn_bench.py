"""gunicorn settings of bench/intake.py's servers: gunicorn's defaults plus the command line.

Passed with ``-c`` so that the project's ./gunicorn.conf.py (which gunicorn would otherwise load
from the working directory) does not apply: its worker recycling (max_requests) would restart
workers in the middle of a measured phase. ``--gunicorn-config project`` uses that file instead.
"""

accesslog = None  # no access log (the real app still writes its own gridgov.access lines)
max_requests = 0  # never recycle workers during a measurement
