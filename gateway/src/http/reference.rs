//! `/api/v1/reference`: Swagger UI on the REST API's OpenAPI document (`/api/v1/openapi.json`), served entirely by
//! the gateway — the page, Swagger UI's bundle and stylesheet — so it works on a machine with no internet access.
//!
//! The bundle and stylesheet come from the npm package pinned in `build.rs` and are compiled into the binary, at
//! URLs that carry its version (see [`super::assets`]). The page's Content Security Policy lets it load nothing and
//! talk to nothing but this gateway, so "Try it out" sends its requests here and nowhere else.

use axum::Router;

use super::assets::{Asset, BundledPage, CSS, JAVASCRIPT, bundled};

/// The page: the stylesheet, Swagger UI, and the script that starts it on the document.
const PAGE: &str = concat!(
    r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shop REST API reference</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/api/v1/reference/swagger-ui-dist-"#,
    env!("REFERENCE_SWAGGER_UI_DIST_VERSION"),
    r#"/swagger-ui.css">
<style>body { margin: 0; background: #fafafa; }</style>
</head>
<body>
<div id="swagger-ui">Loading the API reference…</div>
<script src="/api/v1/reference/swagger-ui-dist-"#,
    env!("REFERENCE_SWAGGER_UI_DIST_VERSION"),
    r#"/swagger-ui-bundle.js"></script>
<script src="/api/v1/reference/init.js"></script>
</body>
</html>
"#
);

/// Starts Swagger UI on the gateway's own document. `validatorUrl: null` because Swagger UI otherwise sends the
/// document to validator.swagger.io for its badge; the base layout has no box to load another document with, and
/// `queryConfigEnabled: false` keeps the page's URL from choosing one either.
const INIT: &str = r#"window.ui = SwaggerUIBundle({
  url: new URL('/api/v1/openapi.json', window.location.href).href,
  dom_id: '#swagger-ui',
  layout: 'BaseLayout',
  validatorUrl: null,
  queryConfigEnabled: false,
  deepLinking: true,
  displayRequestDuration: true,
});
"#;

/// Scripts and styles from this origin only (Swagger UI sets inline styles; its icons are data URLs), and requests
/// to this origin only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static ASSETS: [Asset; 2] = bundled!(
    "/api/v1/reference",
    "reference",
    [
        ("swagger-ui-dist", "REFERENCE_SWAGGER_UI_DIST_VERSION", "swagger-ui.css", CSS),
        ("swagger-ui-dist", "REFERENCE_SWAGGER_UI_DIST_VERSION", "swagger-ui-bundle.js", JAVASCRIPT),
    ]
);

static REFERENCE: BundledPage = BundledPage {
    path: "/api/v1/reference",
    html: PAGE,
    policy: CONTENT_SECURITY_POLICY,
    script_path: "/api/v1/reference/init.js",
    script: INIT,
    assets: &ASSETS,
};

/// The page, its init script, and Swagger UI's files.
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    REFERENCE.routes()
}
