"""The web pages: the supervisors' map (GET /map) and workbench (GET /workbench: queue, case
panel, indicators and patrols; see static/workbench.js) and the administrators' boundary
editor (GET /admin/boundaries), each one HTML page with its script and styles, served by the
app and fed by the JSON API.

The page itself is public (it holds no data); every data call it makes carries the access
token from its login form. MapLibre GL JS is vendored under static/vendor (scripts/vendor-js),
so nothing is loaded from a CDN at run time.

Data source: the page draws from the vector tiles (/tiles/{layer}/{z}/{x}/{y}.mvt) or from the
GeoJSON API (/api/v1/areas, /api/v1/incidents). `?source=tiles|geojson` picks one; without it
the page uses the tiles when the app has the tiles route, else GeoJSON. The choice is made
here, on the server, and handed to the script as `data-source` on <body>; the area levels
(geo.levels: names, labels, tile layers) come the same way, as JSON in `data-levels`.
"""

import mimetypes
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from geo.levels import LEVELS
from gridgov.settings import settings

SOURCES = ("tiles", "geojson")
TILES_URL = "/tiles/{layer}/{z}/{x}/{y}.mvt"
# A URL the tiles route answers when it is registered (layer and tile are arbitrary).
_TILES_PROBE_PATH = "/tiles/grids/0/0/0.mvt"

blp = Blueprint(
    "web",
    __name__,
    static_folder="static",
    static_url_path="/map/static",
    template_folder="templates",
)


def register_web(app: Flask) -> None:
    """Register the map page, the workbench and their static files on `app`."""
    # The page is an ES module graph (map.js imports maplibre-gl.mjs); browsers refuse a
    # module served with any type but JavaScript, and Python 3.11 does not always know .mjs.
    mimetypes.add_type("text/javascript", ".mjs")
    app.config.setdefault("MAP_BASEMAP_STYLE_URL", "")
    app.register_blueprint(blp)


def tiles_available(app: Flask) -> bool:
    """True when `app` has a route answering GET /tiles/{layer}/{z}/{x}/{y}.mvt."""
    adapter = app.url_map.bind("localhost")
    try:
        adapter.match(_TILES_PROBE_PATH, method="GET")
    except RequestRedirect:
        return True
    except HTTPException:
        return False
    return True


def choose_source(app: Flask, asked: str | None) -> str:
    """`asked` when it is a known source, else tiles if the app serves them, else geojson."""
    if asked in SOURCES:
        return asked
    return "tiles" if tiles_available(app) else "geojson"


def basemap_origin(style_url: str) -> str | None:
    """scheme://host[:port] of an absolute basemap style URL (None for a relative one)."""
    parts = urlsplit(style_url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def content_security_policy(style_url: str) -> str:
    """The page's CSP: own origin only, blob: for MapLibre, plus the basemap's origin."""
    extra = basemap_origin(style_url) if style_url else None
    more = f" {extra}" if extra else ""
    directives = [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src 'self' data: blob:{more}",
        f"connect-src 'self'{more}",
        # MapLibre starts its workers from maplibre-gl-worker.mjs (same origin) and falls
        # back to a blob: URL; both are allowed, nothing else.
        "worker-src 'self' blob:",
        "child-src 'self' blob:",
        f"font-src 'self'{more}",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


def _page(template: str, **context) -> Response:
    """One of the app's pages: the template with the basemap and the levels, no caching, and a
    CSP that lets it reach only this service (and the configured basemap)."""
    style_url = settings().map_basemap_style_url
    html = render_template(
        template, basemap_style_url=style_url, levels=LEVELS.as_config(), **context
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = content_security_policy(style_url)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("/map")
def map_page():
    """The supervisor map: login form, grid boundaries, incidents, filters, details panel."""
    return _page(
        "web/map.html",
        data_source=choose_source(current_app, request.args.get("source")),
        tiles_url=TILES_URL,
    )


@blp.route("/admin/boundaries")
def editor_page():
    """The boundary editor (admins): pick, split / merge / move an edge / redraw, preview the
    impact, apply, history and revert; every call goes to the editing API with the token."""
    return _page("web/editor.html")


@blp.route("/workbench")
def workbench_page():
    """The supervisors' workbench: case queue, case panel with its actions, indicators."""
    return _page("web/workbench.html")


@blp.after_request
def _security_headers(response: Response) -> Response:
    # On the page and on its static files alike.
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response
