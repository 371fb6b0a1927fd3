// Starts Swagger UI on /docs. A file of its own, not an inline script, so that the page runs
// under the server's Content-Security-Policy (script-src 'self').
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // The API takes bearer tokens; the UI keeps one only for the page's lifetime.
    persistAuthorization: false,
    // Never sends the schema to an outside validator.
    validatorUrl: null,
  });
});
