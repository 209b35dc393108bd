//! Every error of the API, mapped to a status code in one place and answered as RFC 9457
//! `application/problem+json`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shared::ports::ReadError;

/// The media type of problem answers.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status code says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status code's phrase.
    pub title: String,
    pub status: u16,
    /// What exactly is wrong, and how to put it right.
    pub detail: String,
}

/// Why a request was not answered.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The record was stored, but part of it no longer is (its payload object expired or was deleted).
    #[error("{0}")]
    Gone(String),
    /// The answer cannot fit Lambda's response limit, and there is nothing to link to: a limit of the
    /// deployment (no payload bucket), not of the request, so a 500 whose detail says what to change.
    #[error("{0}")]
    TooLarge(String),
    /// DynamoDB or S3 failed (throttled, down): try again later.
    #[error("the store is unavailable: {0}")]
    Unavailable(#[source] ReadError),
    /// Something that should not happen: a malformed item, a payload that fails its digest, a refused read.
    #[error("{0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<ReadError> for ApiError {
    fn from(err: ReadError) -> Self {
        if let ReadError::Gone { id, .. } = &err {
            tracing::warn!(error = %err, "a stored record is only partly there");
            return ApiError::Gone(format!(
                "notification {id:?} is no longer fully stored: its payload has expired or was deleted"
            ));
        }
        if err.is_transient() {
            ApiError::Unavailable(err)
        } else {
            ApiError::Internal(Box::new(err))
        }
    }
}

impl ApiError {
    /// An internal error, its cause kept.
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(err))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::TooLarge(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn problem(&self) -> Problem {
        let detail = match self {
            // Store errors are logged in full; callers are told only what they can act on.
            ApiError::Unavailable(_) => "the store is busy or unavailable; try again shortly".to_owned(),
            ApiError::Internal(_) => "an internal error occurred; it has been logged".to_owned(),
            other => other.to_string(),
        };
        Problem::new(self.status(), detail)
    }
}

impl Problem {
    /// The problem document of `status`, saying `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    /// The document as the JSON body of an answer.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, [(header::CONTENT_TYPE, PROBLEM_JSON)], self.to_json()).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        self.problem().into_response()
    }
}
