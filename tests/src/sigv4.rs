//! AWS SigV4 verified by the published algorithm, written here independently of `aws-sigv4`: the console
//! test's API Gateway stand-in checks the calls `notifications console` forwards, and the fault proxy checks
//! every BatchWriteItem ingest sends, as it arrives on the wire (the Host and Content-Length the HTTP client
//! wrote, the body it sent). moto and dynalite accept any signature; these checks do not.

use axum::http::{HeaderMap, Uri};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// A signing key's parts: whose, and for which region and service.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    pub access_key: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, everything else %XX.
pub fn encode(text: &[u8]) -> String {
    text.iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The access key a SigV4 `Authorization` header names, if it is one.
pub fn access_key(headers: &HeaderMap) -> Option<String> {
    let authorization = headers.get("authorization")?.to_str().ok()?;
    let credential = authorization.strip_prefix("AWS4-HMAC-SHA256 Credential=")?;
    Some(credential.split('/').next()?.to_owned())
}

/// Why the request is refused, or `None` when it is signed with `key` and the signature is right.
pub fn refusal(method: &str, uri: &Uri, headers: &HeaderMap, body: &[u8], key: &Key<'_>) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let authorization = header("authorization");
    let Some(rest) = authorization.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Some(format!("not signed: {authorization:?}"));
    };
    let part = |name: &str| {
        rest.split(", ")
            .find_map(|p| p.strip_prefix(name))
            .unwrap_or_default()
            .to_owned()
    };
    let (credential, signed_headers, signature) = (part("Credential="), part("SignedHeaders="), part("Signature="));
    let amz_date = header("x-amz-date");
    let date = amz_date.get(..8).unwrap_or_default();
    let scope = format!("{date}/{}/{}/aws4_request", key.region, key.service);
    if credential != format!("{}/{scope}", key.access_key) {
        return Some(format!("wrong credential scope {credential}"));
    }
    if !signed_headers.split(';').any(|h| h == "host") {
        return Some(format!("the host is not signed: {signed_headers}"));
    }
    let canonical_uri: Vec<String> = uri.path().split('/').map(|s| encode(s.as_bytes())).collect();
    let mut query: Vec<(String, String)> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            let plus = |s: &str| s.replace('+', " ");
            (encode(&decode(&plus(n))), encode(&decode(&plus(v))))
        })
        .collect();
    query.sort();
    let canonical_query: Vec<String> = query.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let canonical_headers: String = signed_headers
        .split(';')
        .map(|name| format!("{name}:{}\n", header(name).trim()))
        .collect();
    let canonical_request = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        canonical_uri.join("/"),
        canonical_query.join("&"),
        hex::encode(Sha256::digest(body))
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut signing_key = hmac(format!("AWS4{}", key.secret).as_bytes(), date);
    for step in [key.region, key.service, "aws4_request"] {
        signing_key = hmac(&signing_key, step);
    }
    let expected = hex::encode(hmac(&signing_key, &string_to_sign));
    (expected != signature).then(|| format!("signature mismatch for\n{canonical_request}"))
}
