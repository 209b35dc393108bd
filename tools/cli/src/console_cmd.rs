//! `notifications console`: the console of a deployed stack, served on this machine.
//!
//! A browser cannot sign AWS SigV4, and the deployed API takes only signed calls (or JWTs). This command serves
//! the console's pages from the binary on 127.0.0.1 and forwards every API call to the deployed API: signed with
//! the user's own AWS credentials (`--auth iam`, the default: the profile, SSO or environment aws-config finds),
//! or carrying the bearer token the page sends (`--auth bearer`, for the template's JWT authorizer).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use query::problem::Problem;
use tokio::sync::Mutex;

/// The `console` command's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleArgs {
    /// The deployed query API: the stack's `ApiUrl` output, such as https://abc123.execute-api.eu-west-1.amazonaws.com
    #[arg(long, env = "NOTIFICATIONS_API_URL")]
    pub api: String,
    /// The AWS profile whose credentials sign the calls (default: aws-config's chain: environment, profile, SSO).
    #[arg(long)]
    pub profile: Option<String>,
    /// The API's region (default: read from an execute-api URL, else the profile's region).
    #[arg(long)]
    pub region: Option<String>,
    /// Where to serve the console on this machine (a loopback address).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// How the calls are authorized: `iam` signs them with SigV4; `bearer` passes on the token pasted in the page.
    #[arg(long, value_enum, default_value_t = Auth::Iam)]
    pub auth: Auth,
}

/// How forwarded calls are authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Auth {
    Iam,
    Bearer,
}

/// The answer headers passed back to the browser.
const PASSED_BACK: [header::HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::CONTENT_DISPOSITION,
    header::CACHE_CONTROL,
    header::RETRY_AFTER,
    header::HeaderName::from_static("repr-digest"),
];

/// Credentials are fetched again this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Forwards the console's API calls to the deployed API.
pub struct Forwarder {
    api: String,
    region: String,
    signer: Option<SharedCredentialsProvider>,
    credentials: Mutex<Option<Credentials>>,
    client: reqwest::Client,
}

impl Forwarder {
    /// A forwarder to `api` (its base URL) that signs with `credentials` for `region`, or passes the browser's
    /// `Authorization` on when `credentials` is `None`.
    pub fn new(api: &str, region: String, credentials: Option<SharedCredentialsProvider>) -> anyhow::Result<Forwarder> {
        let parsed = reqwest::Url::parse(api).map_err(|e| anyhow::anyhow!("--api {api:?} is not a URL: {e}"))?;
        let Some(host) = parsed.host_str() else {
            anyhow::bail!("--api {api:?} is not an http(s) URL with a host");
        };
        match parsed.scheme() {
            "https" => {}
            // Signatures and tokens travel in clear text over http: only to this machine.
            "http" if is_loopback(host) => {}
            "http" => anyhow::bail!("--api {api:?}: use https; signatures and tokens must not travel in clear text"),
            _ => anyhow::bail!("--api {api:?} is not an http(s) URL with a host"),
        }
        let client = reqwest::Client::builder()
            // A presigned payload URL is the browser's to follow, not ours.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(35))
            .build()?;
        Ok(Forwarder {
            api: api.trim_end_matches('/').to_owned(),
            region,
            signer: credentials,
            credentials: Mutex::new(None),
            client,
        })
    }

    async fn credentials(&self, provider: &SharedCredentialsProvider) -> Result<Credentials, String> {
        let mut cached = self.credentials.lock().await;
        let fresh = cached.as_ref().is_some_and(|c| {
            c.expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
        });
        if !fresh {
            let credentials = provider.provide_credentials().await.map_err(|e| {
                format!(
                    "no AWS credentials to sign with: {e}; set a profile (--profile, aws sso login) or AWS_* variables"
                )
            })?;
            *cached = Some(credentials);
        }
        Ok(cached.clone().expect("credentials were just set"))
    }

    /// The deployed API's answer to a GET of `path_and_query`, with the browser's `authorization` header when
    /// calls are not signed here.
    pub async fn forward(&self, path_and_query: &str, authorization: Option<&HeaderValue>) -> Response {
        let url = format!("{}{path_and_query}", self.api);
        let mut request = http::Request::builder()
            .method(Method::GET)
            .uri(&url)
            .header(header::ACCEPT, "application/json");
        if let (None, Some(value)) = (&self.signer, authorization) {
            request = request.header(header::AUTHORIZATION, value);
        }
        let mut request = match request.body(bytes::Bytes::new()) {
            Ok(request) => request,
            Err(e) => return problem(StatusCode::BAD_REQUEST, format!("the path cannot be forwarded: {e}")),
        };
        if let Some(provider) = &self.signer {
            let credentials = match self.credentials(provider).await {
                Ok(credentials) => credentials,
                Err(detail) => return problem(StatusCode::BAD_GATEWAY, detail),
            };
            if let Err(e) = sign(&mut request, &credentials, &self.region, SystemTime::now()) {
                return problem(StatusCode::BAD_GATEWAY, format!("the call could not be signed: {e}"));
            }
        }
        let request = match reqwest::Request::try_from(request) {
            Ok(request) => request,
            Err(e) => return problem(StatusCode::BAD_REQUEST, format!("the path cannot be forwarded: {e}")),
        };
        let answer = match self.client.execute(request).await {
            Ok(answer) => answer,
            Err(e) => {
                return problem(
                    StatusCode::BAD_GATEWAY,
                    format!("the API at {} could not be reached: {e}", self.api),
                )
            }
        };
        let status = answer.status();
        let headers = answer.headers().clone();
        let body = match answer.bytes().await {
            Ok(body) => body,
            Err(e) => return problem(StatusCode::BAD_GATEWAY, format!("the API's answer was cut off: {e}")),
        };
        let mut response = (status, body).into_response();
        for name in PASSED_BACK {
            if let Some(value) = headers.get(&name) {
                response.headers_mut().insert(name, value.clone());
            }
        }
        response
    }
}

/// Signs a GET for API Gateway (`execute-api`) with SigV4, in place.
pub fn sign(
    request: &mut http::Request<bytes::Bytes>,
    credentials: &Credentials,
    region: &str,
    at: SystemTime,
) -> Result<(), String> {
    let uri = request.uri().to_string();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str().to_owned(), v.to_owned())))
        .collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let signer = shared::sigv4::SigV4 {
        credentials,
        region,
        service: "execute-api",
        at,
    };
    let signed = shared::sigv4::sigv4_headers(&signer, request.method().as_str(), &uri, &headers, &[])?;
    for (name, value) in signed {
        let name = http::HeaderName::try_from(name).map_err(|e| e.to_string())?;
        let value = http::HeaderValue::try_from(value).map_err(|e| e.to_string())?;
        request.headers_mut().insert(name, value);
    }
    Ok(())
}

/// The region of an execute-api URL (`https://{id}.execute-api.{region}.amazonaws.com`).
pub fn region_of(api: &str) -> Option<String> {
    let host = reqwest::Url::parse(api).ok()?.host_str()?.to_owned();
    let (_, rest) = host.split_once(".execute-api.")?;
    let region = rest.split('.').next()?;
    (!region.is_empty()).then(|| region.to_owned())
}

/// The query with every name and value percent-encoded as SigV4 canonicalizes them (a space as `%20`, never
/// `+`), so that the signature and API Gateway's reading of the query agree whatever the browser wrote.
pub fn strict_query(query: &str) -> String {
    let strict = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| format!("{}={}", strict(&name), strict(&value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn problem(status: StatusCode, detail: String) -> Response {
    Problem::new(status, detail).into_response()
}

async fn forward(State(forwarder): State<Arc<Forwarder>>, request: Request<Body>) -> Response {
    if request.method() != Method::GET {
        return problem(StatusCode::METHOD_NOT_ALLOWED, "the API only answers GET".into());
    }
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{}?{}", request.uri().path(), strict_query(query)),
        None => request.uri().path().to_owned(),
    };
    forwarder
        .forward(&path_and_query, request.headers().get(header::AUTHORIZATION))
        .await
}

/// Whether a host name or address is this machine.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Refuses what is not this machine's own browser tab: a `Host` that is not a loopback name (a page of another
/// site whose name was re-pointed at 127.0.0.1, "DNS rebinding", would otherwise have its calls signed with
/// the user's credentials), and requests a browser marks as coming from another site.
async fn same_machine_only(request: Request<Body>, next: axum::middleware::Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host.as_str(),
    };
    if !is_loopback(name) {
        return problem(
            StatusCode::FORBIDDEN,
            format!("this console answers only pages opened as http://127.0.0.1 or http://localhost, not {host:?}"),
        );
    }
    let cross_site = request
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    if cross_site {
        return problem(StatusCode::FORBIDDEN, "requests from other sites are refused".into());
    }
    let mut response = next.run(request).await;
    // Forwarded answers come from this origin too: never sniffed into something else.
    response
        .headers_mut()
        .insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The console's pages from the binary, and every other path forwarded to the deployed API, for this
/// machine's browser only.
pub fn app(forwarder: Arc<Forwarder>) -> axum::Router {
    query::console::router()
        .fallback(forward)
        .with_state(forwarder)
        .layer(axum::middleware::from_fn(same_machine_only))
}

/// Runs the command until Ctrl-C.
pub async fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(profile) = &args.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = args.region.clone().or_else(|| region_of(&args.api)) {
        loader = loader.region(aws_config::Region::new(region));
    }
    let listen: std::net::SocketAddr = args
        .listen
        .parse()
        .map_err(|e| anyhow::anyhow!("--listen {:?} is not an address and port: {e}", args.listen))?;
    if !listen.ip().is_loopback() {
        anyhow::bail!(
            "--listen {listen}: the console signs with your credentials for whoever reaches it, so it listens on \
             a loopback address only (127.0.0.1 or ::1)"
        );
    }
    let aws = loader.load().await;
    let region = match (args.auth, aws.region()) {
        (_, Some(region)) => region.to_string(),
        // Nothing is signed with a bearer token: the region is not needed.
        (Auth::Bearer, None) => String::new(),
        (Auth::Iam, None) => anyhow::bail!("no region: give --region, or use the API's execute-api URL"),
    };
    let credentials = match args.auth {
        Auth::Iam => Some(
            aws.credentials_provider()
                .ok_or_else(|| anyhow::anyhow!("aws-config found no credentials provider"))?,
        ),
        Auth::Bearer => None,
    };
    let forwarder = Arc::new(Forwarder::new(&args.api, region.clone(), credentials)?);
    if let Some(provider) = &forwarder.signer {
        // Say now, not at the first click, when there is nothing to sign with.
        forwarder.credentials(provider).await.map_err(|e| anyhow::anyhow!(e))?;
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let how = match args.auth {
        Auth::Iam => format!("signed with your AWS credentials for {region}"),
        Auth::Bearer => "with the bearer token you paste in the page (API token)".to_owned(),
    };
    println!(
        "console: http://{}/console/ (API calls go to {} {how}); Ctrl-C stops it",
        listener.local_addr()?,
        forwarder.api
    );
    query::serve::serve(listener, app(forwarder))
        .with_graceful_shutdown(local_stack::shutdown_signal())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_an_execute_api_url() {
        assert_eq!(
            region_of("https://a1b2c3.execute-api.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of("https://api.example.com"), None);
        assert_eq!(region_of("not a url"), None);
    }

    #[test]
    fn the_query_is_forwarded_in_the_encoding_sigv4_signs() {
        assert_eq!(
            strict_query("order_id=o+1%2F%C3%A9&q=a b&cursor=x%3D%3D"),
            "order_id=o%201%2F%C3%A9&q=a%20b&cursor=x%3D%3D"
        );
        assert_eq!(strict_query("q=%ZZ"), "q=%25ZZ");
    }

    #[test]
    fn an_api_that_is_not_an_https_url_is_refused_unless_it_is_on_this_machine() {
        for api in [
            "ftp://x",
            "x",
            "https://",
            "http://abc.execute-api.eu-west-1.amazonaws.com",
        ] {
            assert!(Forwarder::new(api, "eu-west-1".into(), None).is_err(), "{api}");
        }
        for api in [
            "https://abc.execute-api.eu-west-1.amazonaws.com",
            "http://127.0.0.1:3000",
            "http://localhost:3000",
            "http://[::1]:3000",
        ] {
            assert!(Forwarder::new(api, "eu-west-1".into(), None).is_ok(), "{api}");
        }
    }

    #[test]
    fn only_loopback_names_are_this_machine() {
        for host in ["127.0.0.1", "localhost", "LOCALHOST", "[::1]", "::1", "127.0.0.2"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["evil.example", "10.0.0.1", "0.0.0.0", "localhost.evil.example", ""] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    /// The signed request names the API Gateway scope and carries the date and the session token; the
    /// signature itself is checked against an independent SigV4 verifier in tests/tests/console.rs.
    #[test]
    fn a_signed_request_carries_the_date_the_scope_and_the_signature() {
        let mut request = http::Request::builder()
            .method(Method::GET)
            .uri("https://a1b2c3.execute-api.eu-west-1.amazonaws.com/notifications?order_id=o-1")
            .body(bytes::Bytes::new())
            .unwrap();
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "test");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_996_800); // 2026-11-30T00:00:00Z
        sign(&mut request, &credentials, "eu-west-1", at).unwrap();
        let authorization = request.headers()[header::AUTHORIZATION].to_str().unwrap();
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261130/eu-west-1/execute-api/aws4_request, SignedHeaders="
            ),
            "{authorization}"
        );
        assert_eq!(request.headers()["x-amz-date"], "20261130T000000Z");
        assert_eq!(request.headers()["x-amz-security-token"], "token");
    }
}
