//! SigV4 signing outside the SDK, by the SDK's own signer (`aws-sigv4`).

use std::time::SystemTime;

use aws_credential_types::Credentials;

/// Who signs, for which region and service, and when.
pub struct SigV4<'a> {
    pub credentials: &'a Credentials,
    pub region: &'a str,
    pub service: &'a str,
    pub at: SystemTime,
}

/// The headers SigV4 adds to a request of `method` to `uri` with `headers` and `body` (`authorization`,
/// `x-amz-date`, and `x-amz-security-token` with session credentials): the one place requests are signed
/// outside the SDK (BatchWriteItem here, API calls in `notifications console`).
pub fn sigv4_headers(
    signer: &SigV4<'_>,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;

    let identity = aws_smithy_runtime_api::client::identity::Identity::from(signer.credentials.clone());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(signer.region)
        .name(signer.service)
        .time(signer.at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(method, uri, headers.iter().copied(), SignableBody::Bytes(body))
        .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}
