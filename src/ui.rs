//! The admin web UI: the static files under `assets/`, embedded in the binary with rust-embed
//! (in every build profile, so a debug build serves exactly what a release serves) and served
//! at `/admin/`. The UI is plain HTML, CSS and JavaScript modules with no build step; it talks
//! only to the documented admin API. This module serves files; it holds no logic of the UI.

use poem::{
    http::{header, Method, StatusCode},
    Endpoint, Request, Response,
};
use rust_embed::RustEmbed;

use crate::api::error::ApiError;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The UI loads only its own files and talks only to its own origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

/// Serves `/admin/...` from the embedded assets (`/admin/` is `index.html`).
pub struct AdminUi;

impl Endpoint for AdminUi {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Err(ApiError::MethodNotAllowed {
                allow: "GET, HEAD".into(),
            }
            .into());
        }
        if req.original_uri().path() == "/admin" {
            // `/admin` without the slash: relative links need the slash.
            return Ok(Response::builder()
                .status(StatusCode::PERMANENT_REDIRECT)
                .header(header::LOCATION, "/admin/")
                .finish());
        }
        let path = req.uri().path().trim_start_matches('/');
        let file = if path.is_empty() || path.ends_with('/') {
            "index.html"
        } else {
            path
        };
        let Some(asset) = Assets::get(file) else {
            return Err(ApiError::NotFound {
                entity: "UI file",
                id: file.to_string(),
            }
            .into());
        };
        let etag = format!(
            "\"{}\"",
            crate::secrets::hex(&asset.metadata.sha256_hash()[..12])
        );
        let unchanged = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == etag);
        let builder = Response::builder()
            .header(header::CACHE_CONTROL, "no-cache")
            .header(header::ETAG, etag)
            .header("content-security-policy", CONTENT_SECURITY_POLICY);
        if unchanged {
            return Ok(builder.status(StatusCode::NOT_MODIFIED).finish());
        }
        Ok(builder
            .header(header::CONTENT_TYPE, content_type(file))
            .body(asset.data.into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ui_and_its_vendored_chart_library_are_embedded() {
        assert!(Assets::get("index.html").is_some());
        assert!(Assets::iter().any(|f| f.starts_with("vendor/uplot-") && f.ends_with("LICENSE")));
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
    }
}
