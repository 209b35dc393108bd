//! Opaque, tamper-evident pagination cursors.
//!
//! A cursor is `base64url(JSON) "." base64url(HMAC-SHA256(secret, JSON))`. The JSON names the position (the
//! index key of the last item returned), the query it belongs to (a digest of lookup, id, filters and order)
//! and when it expires. A cursor that was altered, signed with another key, used for another query or
//! presented after it expired is refused; it can never reach another key's data.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub use shared::ports::Position;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    v: u8,
    /// Digest of the query this cursor continues.
    q: String,
    p: Position,
    /// Expiry, seconds since the epoch.
    e: i64,
}

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("cursor is malformed")]
    Malformed,
    #[error("cursor signature does not match: it was altered or issued by another deployment")]
    BadSignature,
    #[error("cursor belongs to a different query; repeat the same parameters, or drop the cursor")]
    OtherQuery,
    #[error("cursor has expired; start again without a cursor")]
    Expired,
}

/// Signs and verifies cursors with one secret.
#[derive(Clone)]
pub struct CursorSigner {
    secret: Vec<u8>,
    ttl_seconds: i64,
}

impl std::fmt::Debug for CursorSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorSigner")
            .field("ttl_seconds", &self.ttl_seconds)
            .finish_non_exhaustive()
    }
}

/// A digest that identifies a query (everything but the page size and the cursor).
pub fn query_digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

impl CursorSigner {
    pub fn new(secret: Vec<u8>, ttl_seconds: i64) -> Self {
        CursorSigner { secret, ttl_seconds }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret).expect("HMAC takes keys of any length")
    }

    pub fn issue(&self, query: &str, position: Position, now: i64) -> String {
        let claims = Claims {
            v: 1,
            q: query.to_owned(),
            p: position,
            e: now + self.ttl_seconds,
        };
        let body = serde_json::to_vec(&claims).unwrap_or_default();
        let mut mac = self.mac();
        mac.update(&body);
        let signature = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&body),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    pub fn verify(&self, cursor: &str, query: &str, now: i64) -> Result<Position, CursorError> {
        if cursor.len() > 8192 {
            return Err(CursorError::Malformed);
        }
        let (body, signature) = cursor.split_once('.').ok_or(CursorError::Malformed)?;
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| CursorError::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| CursorError::Malformed)?;
        let mut mac = self.mac();
        mac.update(&body);
        mac.verify_slice(&signature).map_err(|_| CursorError::BadSignature)?;
        let claims: Claims = serde_json::from_slice(&body).map_err(|_| CursorError::Malformed)?;
        if claims.v != 1 {
            return Err(CursorError::Malformed);
        }
        if claims.q != query {
            return Err(CursorError::OtherQuery);
        }
        if claims.e < now {
            return Err(CursorError::Expired);
        }
        Ok(claims.p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position() -> Position {
        Position {
            id: "t:0:1".into(),
            index_key: "o-1".into(),
            sort_key: "2024#t:0:1".into(),
        }
    }

    #[test]
    fn a_cursor_round_trips() {
        let signer = CursorSigner::new(b"k".repeat(32), 60);
        let cursor = signer.issue("q", position(), 1_000);
        assert_eq!(signer.verify(&cursor, "q", 1_000), Ok(position()));
    }

    #[test]
    fn altered_foreign_stale_and_garbage_cursors_are_refused() {
        let signer = CursorSigner::new(b"k".repeat(32), 60);
        let cursor = signer.issue("q", position(), 1_000);
        let (body, sig) = cursor.split_once('.').unwrap();
        let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        claims["p"]["index_key"] = "someone-else".into();
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()));
        assert_eq!(signer.verify(&forged, "q", 1_000), Err(CursorError::BadSignature));
        let other = CursorSigner::new(b"x".repeat(32), 60);
        assert_eq!(other.verify(&cursor, "q", 1_000), Err(CursorError::BadSignature));
        assert_eq!(signer.verify(&cursor, "other", 1_000), Err(CursorError::OtherQuery));
        assert_eq!(signer.verify(&cursor, "q", 1_061), Err(CursorError::Expired));
        for garbage in ["", ".", "abc", "a.b", "!!!.???", &"a".repeat(10_000)] {
            assert!(
                matches!(
                    signer.verify(garbage, "q", 1_000),
                    Err(CursorError::Malformed | CursorError::BadSignature)
                ),
                "{garbage}"
            );
        }
    }

    #[test]
    fn query_digests_do_not_collide_by_concatenation() {
        assert_ne!(query_digest(&["ab", "c"]), query_digest(&["a", "bc"]));
    }
}
