//! What the gateway's browser pages ([`super::playground`], [`super::reference`]) share: a page, its own script
//! and the assets `build.rs` bundled from pinned npm packages, all compiled into the binary.
//!
//! The assets' URLs carry their package's version, so browsers may cache them for good; the page and its script
//! are never cached, and the page's Content Security Policy keeps it from loading anything the gateway does not
//! serve.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};

pub(super) const CSS: &str = "text/css; charset=utf-8";
pub(super) const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// A page served with everything it loads.
pub(super) struct BundledPage {
    /// The page's route.
    pub(super) path: &'static str,
    pub(super) html: &'static str,
    /// Its Content Security Policy.
    pub(super) policy: &'static str,
    /// The route of the page's own script: a file rather than an inline script, so the policy can forbid inline
    /// scripts.
    pub(super) script_path: &'static str,
    pub(super) script: &'static str,
    /// The bundled files the page loads (see [`bundled!`]).
    pub(super) assets: &'static [Asset],
}

/// A bundled asset: its route, its media type, its bytes.
pub(super) struct Asset {
    pub(super) path: &'static str,
    pub(super) media_type: &'static str,
    pub(super) body: &'static [u8],
}

/// The [`Asset`]s of a page from the files `build.rs` unpacked into `OUT_DIR/<page>/`, each given as
/// `(package, version variable, file, media type)` and served at `<route>/<package>-<version>/<file>`, where the
/// version variable is the environment variable `build.rs` set to the package's version.
macro_rules! bundled {
    (
        $route:literal,
        $page:literal,
        [$(($package:literal, $version:literal, $file:literal, $media_type:expr)),* $(,)?]
    ) => {
        [$(
            $crate::http::assets::Asset {
                path: concat!($route, "/", $package, "-", env!($version), "/", $file),
                media_type: $media_type,
                body: include_bytes!(concat!(env!("OUT_DIR"), "/", $page, "/", $file)),
            }
        ),*]
    };
}
pub(super) use bundled;

impl BundledPage {
    /// The page, its script, and every asset.
    pub(super) fn routes<S: Clone + Send + Sync + 'static>(&'static self) -> Router<S> {
        let router = Router::new()
            .route(self.path, get(move || async move { self.page() }))
            .route(self.script_path, get(move || async move { not_cached(JAVASCRIPT, self.script) }));
        self.assets.iter().fold(router, |router, asset| {
            router.route(
                asset.path,
                get(move || async move {
                    (
                        [
                            (header::CONTENT_TYPE, asset.media_type),
                            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                        ],
                        asset.body,
                    )
                }),
            )
        })
    }

    fn page(&self) -> Response {
        let mut response = not_cached(HTML, self.html);
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(self.policy));
        response
    }
}

fn not_cached(media_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, media_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}
