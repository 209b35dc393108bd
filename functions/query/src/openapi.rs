//! The OpenAPI 3.1 document of the API, generated from the handlers and types by utoipa.

use std::sync::OnceLock;

use serde::Serialize;
use shared::model::{Data, Extracted, Header, PayloadFormat, Summary};
use utoipa::OpenApi;

use crate::api::{Health, Page, Step, Timeline};
use crate::problem::Problem;

/// One notification with its headers and payload (`GET /notifications/{id}`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer that `NotificationView` serializes; never built itself.
pub struct NotificationDetail {
    #[serde(flatten)]
    pub summary: Summary,
    pub headers: Vec<Header>,
    /// How to read `payload`: `json` (the document itself), `text`, `base64`, or `none` for a tombstone.
    pub payload_encoding: PayloadEncoding,
    /// The record value: the JSON document, a string, or `null` for a tombstone.
    pub payload: serde_json::Value,
}

/// How `payload` is written.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum PayloadEncoding {
    Json,
    Text,
    Base64,
    None,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Notification event log",
        description = "Every message of the Kafka bus, stored in DynamoDB and queryable by order, correlation and customer id.",
        license(name = "Apache-2.0")
    ),
    paths(
        crate::api::health,
        crate::api::openapi_document,
        crate::api::list_notifications,
        crate::api::get_notification,
        crate::api::timeline,
    ),
    components(schemas(
        Page,
        Summary,
        Extracted,
        Data,
        Header,
        PayloadFormat,
        Step,
        Timeline,
        Health,
        Problem,
        NotificationDetail,
        PayloadEncoding
    ))
)]
pub struct ApiDoc;

/// The document as JSON text, built once.
pub fn document_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default())
}
