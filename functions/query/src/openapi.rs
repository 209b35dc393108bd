//! The OpenAPI 3.1 document of the API, generated from the handlers and types by utoipa.

use std::sync::OnceLock;

use serde::Serialize;
use shared::model::{Change, Data, Extracted, Header, PayloadFormat, SchemaInfo, Summary};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::problem::Problem;
use crate::read::{Page, SearchAnswer};
use crate::routes::Health;
use crate::timeline::{Step, Timeline};

/// One notification with its headers and payload (`GET /notifications/{id}`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer that `NotificationView` serializes; never built itself.
pub struct NotificationDetail {
    #[serde(flatten)]
    pub summary: Summary,
    pub headers: Vec<Header>,
    /// How to read `payload`: `json` (the document itself), `text`, `base64`, `none` for a tombstone, or `url`
    /// for a payload too large to carry in an answer.
    pub payload_encoding: PayloadEncoding,
    /// The record value: the JSON document, a string, `null` for a tombstone, or (`url`) where to GET its
    /// exact bytes: a presigned S3 URL valid for five minutes, or this API's `/notifications/{id}/payload`.
    pub payload: serde_json::Value,
    /// The SHA-256 of the payload's exact bytes, in hex (absent for a tombstone).
    pub payload_sha256: Option<String>,
    /// For a change event (Debezium, bare or in Kafka Connect's JsonConverter wrapper): its operation, table,
    /// change time and connector. Absent for any other record.
    pub change: Option<Change>,
    /// For a value framed by a schema registry (Confluent or AWS Glue) and decoded with its schema: the value
    /// as JSON (Avro's JSON mapping with unions unwrapped, Protobuf's canonical JSON mapping, or the JSON
    /// Schema body). `payload` keeps the exact bytes (base64). Absent when the value is not framed, did not
    /// decode (a warning says why), or was too large to keep beside the payload.
    pub decoded: Option<serde_json::Value>,
    /// Which schema framed the value: registry, id (a Confluent id or a Glue version UUID), kind and name.
    pub schema: Option<SchemaInfo>,
    /// A registry-framed key, decoded.
    pub decoded_key: Option<serde_json::Value>,
    /// Which schema framed the key.
    pub key_schema: Option<SchemaInfo>,
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
    Url,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Notification event log",
        description = "Every message of the Kafka bus, stored in DynamoDB and queryable by order, correlation and customer id.",
        license(name = "Apache-2.0")
    ),
    paths(
        crate::routes::health,
        crate::routes::openapi_document,
        crate::routes::list_notifications,
        crate::routes::get_notification,
        crate::routes::get_payload,
        crate::routes::timeline,
        crate::routes::search,
    ),
    components(schemas(
        Page,
        SearchAnswer,
        Summary,
        Extracted,
        Change,
        SchemaInfo,
        Data,
        Header,
        PayloadFormat,
        Step,
        Timeline,
        Health,
        Problem,
        NotificationDetail,
        PayloadEncoding
    )),
    modifiers(&ServerErrors)
)]
pub struct ApiDoc;

/// Declares, once for every operation, the two server errors any of them can answer: 500 and 503, as problem
/// documents.
struct ServerErrors;

impl Modify for ServerErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    crate::problem::PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let responses = &mut operation.responses.responses;
                responses.insert(
                    "500".into(),
                    problem("An internal error occurred; it has been logged").into(),
                );
                responses.insert(
                    "503".into(),
                    problem("The service or its store (DynamoDB, S3) is busy or unavailable; try again shortly").into(),
                );
            }
        }
    }
}

/// The document as JSON text, built once.
pub fn document_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Every answer the API can give is documented: each operation names its 500 and 503 as problem documents,
    /// every response has the description OpenAPI requires, and every body has a schema.
    #[test]
    fn every_operation_documents_its_server_errors_and_every_response_is_described() {
        let document: Value = serde_json::from_str(super::document_json()).unwrap();
        let paths = document["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 7);
        for (path, item) in paths {
            let responses = item["get"]["responses"].as_object().unwrap();
            for status in ["500", "503"] {
                assert_eq!(
                    responses[status]["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{path} {status}"
                );
            }
            for (status, response) in responses {
                let description = response["description"].as_str().unwrap_or_default();
                assert!(!description.is_empty(), "{path} {status} has no description");
                if status.starts_with('3') {
                    assert!(
                        response["headers"]["location"].is_object(),
                        "{path} {status} names no Location"
                    );
                    continue;
                }
                let content = response["content"].as_object().unwrap();
                for (media, body) in content {
                    assert!(body["schema"].is_object(), "{path} {status} {media} has no schema");
                    if status.starts_with(['4', '5']) {
                        assert_eq!(media, crate::problem::PROBLEM_JSON, "{path} {status}");
                    }
                }
            }
        }
    }
}
