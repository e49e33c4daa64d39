// Starts Swagger UI on /api/v1/docs (kept out of the page so its CSP needs no inline script).
// The page hands over the document URL and the OPENAPI_SWAGGER_UI_CONFIG options.
window.addEventListener("load", function () {
  var container = document.getElementById("swagger-ui-container");
  var config = {
    url: container.dataset.specUrl,
    dom_id: "#swagger-ui-container",
    // No badge from the public validator service: the page talks to this origin only.
    validatorUrl: null,
  };
  var overrides = JSON.parse(container.dataset.config || "{}");
  Object.keys(overrides).forEach(function (key) {
    config[key] = overrides[key];
  });
  window.ui = window.SwaggerUIBundle(config);
});
