"""The API docs page (/api/v1/docs): Swagger UI from our own template, no inline script.

flask-smorest's stock page starts Swagger UI from an inline <script>, which a strict
Content-Security-Policy would have to allow by hash. Ours keeps that start-up code in
static/swagger-init.js and hands it the document URL and the Swagger UI options as data
attributes, so the page's CSP allows only this origin's scripts and styles. The view replaces
the stock one under the same endpoint (`api-docs.openapi_swagger_ui`, public) and URL.
"""

from flask import Blueprint, Flask, Response, current_app, render_template, url_for

SWAGGER_UI_ENDPOINT = "api-docs.openapi_swagger_ui"
# Swagger UI: own-origin scripts and styles; images include data: (its icons); fetches go to
# this origin only (the document and "Try it out").
DOCS_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

blp = Blueprint(
    "docs_page",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/api/v1/docs/page",
)


def register_docs_page(app: Flask) -> None:
    """Serve /api/v1/docs from our template (when the app has the Swagger UI route)."""
    app.register_blueprint(blp)
    if SWAGGER_UI_ENDPOINT in app.view_functions:
        app.view_functions[SWAGGER_UI_ENDPOINT] = swagger_ui_page


def swagger_ui_page() -> Response:
    """The Swagger UI page for the OpenAPI document, under a strict CSP."""
    config = current_app.config
    html = render_template(
        "docs_page/swagger_ui.html",
        title=config["API_TITLE"],
        spec_url=url_for("api-docs.openapi_json"),
        swagger_ui_url=config["OPENAPI_SWAGGER_UI_URL"],
        swagger_ui_config=config.get("OPENAPI_SWAGGER_UI_CONFIG", {}),
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response
