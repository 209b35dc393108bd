//! Opaque, tamper-evident pagination cursors.
//!
//! A cursor is `base64url(JSON) "." base64url(HMAC-SHA256(secret, JSON))`. The JSON names the position (the
//! index key of the last item returned), the query it belongs to (a digest of lookup, id, filters and order)
//! and when it expires. A cursor that was altered, signed with another key, used for another query or
//! presented after it expired is refused; it can never reach another key's data.
//!
//! The signer holds a key ring: the first key signs, every key verifies. Read from Secrets Manager, the ring is
//! the secret's current and previous versions, and it is read again (at most once a minute) when a cursor
//! signed with a key the ring does not hold arrives: after a rotation, the instances started before it learn
//! the new key from the first cursor a newer instance signed, and cursors signed before it keep working until
//! they expire. The ring is also read again when it is older than fifteen minutes, so an instance that only
//! ever signs (and never meets a newer cursor) moves to a rotated key too.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
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

/// Where a signer's keys come from: the newest first. Read at start, again when a cursor arrives that no key
/// held verifies, and again before signing with keys read more than fifteen minutes ago.
#[async_trait]
pub trait KeySource: Send + Sync {
    async fn keys(&self) -> Result<Vec<Vec<u8>>, String>;
}

/// The least time between two reads of the key source: a forged cursor cannot make every request a read.
const RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// The longest a signer signs with keys it has not read again: an instance that only ever serves first pages
/// (and so never meets a newer cursor) still moves to a rotated key.
const KEY_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// Signs cursors with the first key of its ring and verifies them with any.
#[derive(Clone)]
pub struct CursorSigner {
    keys: Arc<RwLock<Vec<Vec<u8>>>>,
    ttl_seconds: i64,
    source: Option<Arc<dyn KeySource>>,
    last_read: Arc<Mutex<Instant>>,
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
    /// A signer with one fixed key.
    pub fn new(secret: Vec<u8>, ttl_seconds: i64) -> Self {
        CursorSigner {
            keys: Arc::new(RwLock::new(vec![secret])),
            ttl_seconds,
            source: None,
            last_read: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// A signer whose keys come from `source`, read now: a source that cannot be read, or holds no key, is an
    /// error at start, not a signer that fails later.
    pub async fn from_source(source: Arc<dyn KeySource>, ttl_seconds: i64) -> Result<Self, String> {
        let keys = source.keys().await?;
        if keys.is_empty() {
            return Err("the key source holds no key".into());
        }
        Ok(CursorSigner {
            keys: Arc::new(RwLock::new(keys)),
            ttl_seconds,
            source: Some(source),
            // The first reload may come at once: a cursor from a newer instance is the first sign of a rotation.
            last_read: Arc::new(Mutex::new(
                Instant::now().checked_sub(RELOAD_INTERVAL).unwrap_or_else(Instant::now),
            )),
        })
    }

    fn ring(&self) -> std::sync::RwLockReadGuard<'_, Vec<Vec<u8>>> {
        self.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn mac(key: &[u8]) -> HmacSha256 {
        HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
    }

    /// Reads the keys again, unless they were read within the last minute; whether the ring changed.
    pub async fn reload(&self) -> bool {
        self.read_again(RELOAD_INTERVAL).await
    }

    /// Reads the keys again if they were read more than fifteen minutes ago (before signing).
    pub async fn refresh(&self) -> bool {
        self.read_again(KEY_MAX_AGE).await
    }

    async fn read_again(&self, unless_within: Duration) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        {
            let mut last_read = self.last_read.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if last_read.elapsed() < unless_within {
                return false;
            }
            *last_read = Instant::now();
        }
        match source.keys().await {
            Ok(keys) if !keys.is_empty() && *self.ring() != keys => {
                tracing::info!(keys = keys.len(), "cursor keys read again: the secret was rotated");
                *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = keys;
                true
            }
            Ok(_) => false,
            Err(error) => {
                tracing::warn!(%error, "cursor keys could not be read again; keeping the ones held");
                false
            }
        }
    }

    pub fn issue(&self, query: &str, position: Position, now: i64) -> String {
        let claims = Claims {
            v: 1,
            q: query.to_owned(),
            p: position,
            e: now + self.ttl_seconds,
        };
        let body = serde_json::to_vec(&claims).unwrap_or_default();
        let mut mac = Self::mac(&self.ring()[0]);
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
        let signed = self.ring().iter().any(|key| {
            let mut mac = Self::mac(key);
            mac.update(&body);
            mac.verify_slice(&signature).is_ok()
        });
        if !signed {
            return Err(CursorError::BadSignature);
        }
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

    /// A test double of Secrets Manager: the versions of one secret, newest first.
    struct SecretVersionsDouble(Mutex<Vec<Vec<u8>>>);

    #[async_trait]
    impl KeySource for SecretVersionsDouble {
        async fn keys(&self) -> Result<Vec<Vec<u8>>, String> {
            Ok(self.0.lock().unwrap().iter().take(2).cloned().collect())
        }
    }

    #[tokio::test]
    async fn after_a_rotation_old_and_new_instances_read_each_others_cursors() {
        let secret = Arc::new(SecretVersionsDouble(Mutex::new(vec![b"1".repeat(32)])));
        let old = CursorSigner::from_source(secret.clone(), 60).await.unwrap();
        let before = old.issue("q", position(), 1_000);
        secret.0.lock().unwrap().insert(0, b"2".repeat(32));
        let new = CursorSigner::from_source(secret.clone(), 60).await.unwrap();
        let after = new.issue("q", position(), 1_000);
        assert_eq!(
            new.verify(&before, "q", 1_000),
            Ok(position()),
            "the previous version still verifies"
        );
        assert_eq!(old.verify(&after, "q", 1_000), Err(CursorError::BadSignature));
        assert!(old.reload().await, "the old instance learns the new key");
        assert_eq!(old.verify(&after, "q", 1_000), Ok(position()));
        assert!(!old.reload().await, "and reads the secret again only after a minute");
    }

    #[tokio::test]
    async fn a_key_source_with_no_key_is_an_error_at_start() {
        let empty = Arc::new(SecretVersionsDouble(Mutex::new(Vec::new())));
        assert!(CursorSigner::from_source(empty, 60).await.is_err());
    }

    #[test]
    fn query_digests_do_not_collide_by_concatenation() {
        assert_ne!(query_digest(&["ab", "c"]), query_digest(&["a", "bc"]));
    }
}
