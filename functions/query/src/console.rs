//! The web console (README, "Console"): a page shell and its script and style, embedded in the binary and served
//! under `/console/` beside the API they call. Nothing is fetched from anywhere else, and the Content-Security-
//! Policy says so to the browser: no inline script or style, no other origin, no frames. The script renders
//! everything from the data as text (`textContent`, never markup), so a payload holding `<script>` is shown,
//! not run.
//!
//! Deep links (`/console/orders/{id}`, `/console/customers/{id}`, `/console/correlations/{id}`,
//! `/console/records/{id}`) answer the same shell; the script reads the path. A path it cannot show is answered
//! here, as a page that says what is wrong.

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::params::MAX_ID_BYTES;

/// Where the browser may load from and connect to: this origin only, and no inline code.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page shell every console path answers.
pub const SHELL: &str = include_str!("../console/index.html");

/// The embedded assets, by file name: content and media type.
pub const ASSETS: [(&str, &str, &str); 3] = [
    (
        "console.js",
        include_str!("../console/console.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "console.css",
        include_str!("../console/console.css"),
        "text/css; charset=utf-8",
    ),
    ("icon.svg", include_str!("../console/icon.svg"), "image/svg+xml"),
];

/// The kinds of page a deep link names.
pub const KINDS: [&str; 4] = ["orders", "customers", "correlations", "records"];

/// The console's routes: merged into the API's router, and served by `notifications console` beside its
/// forwarding of the API calls. They need no state.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        // `/console` is the page itself: API Gateway's `/console/{proxy+}` route may not match `/console/`.
        .route("/console", get(shell))
        .route("/console/", get(shell))
        .route("/console/assets/{name}", get(asset))
        // The rest of the path, whatever it holds: API Gateway hands the function a decoded path, so an id with
        // a `%2F` in the link arrives with a `/`. The page reads the id from the browser's own URL.
        .route("/console/{kind}/{*id}", get(deep_link))
}

/// Headers every console answer carries.
fn guarded(status: StatusCode, content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

const HTML: &str = "text/html; charset=utf-8";

async fn shell() -> Response {
    guarded(StatusCode::OK, HTML, SHELL)
}

async fn asset(name: Result<Path<String>, PathRejection>) -> Response {
    let found = name
        .ok()
        .and_then(|Path(name)| ASSETS.into_iter().find(|(file, _, _)| *file == name));
    match found {
        Some((_, body, media_type)) => guarded(StatusCode::OK, media_type, body),
        None => problem_page(StatusCode::NOT_FOUND, "The console has no such file."),
    }
}

async fn deep_link(path: Result<Path<(String, String)>, PathRejection>) -> Response {
    let Ok(Path((kind, id))) = path else {
        return problem_page(
            StatusCode::BAD_REQUEST,
            "This link is not valid: its path cannot be read.",
        );
    };
    if !KINDS.contains(&kind.as_str()) {
        return problem_page(
            StatusCode::NOT_FOUND,
            "The console has no such page. Links look like /console/orders/{id}, /console/customers/{id}, \
             /console/correlations/{id} or /console/records/{id}.",
        );
    }
    if id.trim().is_empty() || id.len() > MAX_ID_BYTES {
        return problem_page(
            StatusCode::BAD_REQUEST,
            &format!(
                "An id is 1 to {MAX_ID_BYTES} bytes long; this one is {} bytes.",
                id.len()
            ),
        );
    }
    guarded(StatusCode::OK, HTML, SHELL)
}

/// A page that says what is wrong, with the search box to go on from. `message` is escaped.
pub fn problem_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{code} {title} · Notification event log</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head>\
         <body><main class=\"problem\"><h1>{code} {title}</h1><p>{message}</p>\
         <p><a href=\"/console/\">Search for an id</a></p></main></body></html>\n",
        code = status.as_u16(),
        message = escape(message),
    );
    guarded(status, HTML, body)
}

/// Text made safe to place in HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_carries_no_markup() {
        assert_eq!(
            escape("<img src=x onerror=\"alert('1')\">&"),
            "&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;"
        );
    }

    /// The shell loads only its own files, and carries no inline script, style or event handler for the
    /// policy to refuse.
    #[test]
    fn the_shell_loads_only_embedded_files_and_has_no_inline_code() {
        for reference in ["/console/assets/console.js", "/console/assets/console.css"] {
            assert!(SHELL.contains(reference), "{reference}");
        }
        let lower = SHELL.to_ascii_lowercase();
        assert!(!lower.contains("<style"), "inline style");
        assert!(!lower.contains(" style="), "style attribute");
        let handler = lower.match_indices(" on").any(|(at, _)| {
            lower[at + 3..].chars().take_while(char::is_ascii_alphabetic).count() > 0
                && lower[at + 3..]
                    .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                    .starts_with('=')
        });
        assert!(!handler, "an event handler attribute");
        assert!(
            !lower.contains("http:") && !lower.contains("https:"),
            "an external reference"
        );
        for script in lower.split("<script").skip(1) {
            let tag = script.split('>').next().unwrap_or_default();
            assert!(tag.contains("src=\"/console/assets/"), "inline script: <script{tag}>");
        }
    }

    /// The script never hands data to the HTML parser.
    #[test]
    fn the_script_builds_the_page_from_text_nodes_only() {
        let script = ASSETS[0].1;
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "setAttribute('on",
        ] {
            assert!(!script.contains(sink), "console.js uses {sink}");
        }
        assert!(!script.contains("http://") && !script.contains("https://"));
    }
}
