//! The HTTP API (README, "API") as one axum router: run by `lambda_http` in Lambda and by a plain server locally.
//! No endpoint scans the table: lists and timelines query an index, one notification is a GetItem.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use shared::ports::Lookup;

use crate::openapi;
use crate::params::{self, ListParams, Order};
use crate::problem::ApiError;
use crate::read::{Page, RawPayload, ReadService, SearchAnswer};
use crate::timeline::Timeline;

/// The longest timeline served in one answer.
pub const MAX_TIMELINE_STEPS: usize = 1000;
/// The longest record id the record routes take, in bytes.
pub const MAX_RECORD_ID_BYTES: usize = 1024;
/// The default and largest first page of each kind a search answers.
pub const SEARCH_DEFAULT_LIMIT: usize = 10;
pub const SEARCH_MAX_LIMIT: usize = 50;

/// The health answer.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// The router with every endpoint.
pub fn router(state: ReadService) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi_document))
        .route("/notifications", get(list_notifications))
        .route("/notifications/{id}", get(get_notification))
        .route("/notifications/{id}/payload", get(get_payload))
        .route("/correlations/{correlation_id}/timeline", get(timeline))
        .route("/search", get(search))
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see /openapi.json".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("this endpoint only answers GET".into())
}

#[utoipa::path(
    get,
    path = "/health",
    responses(
        (status = 200, body = Health, description = "The service is up"),
    )
)]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    responses(
        (status = 200, body = Object, content_type = "application/json", description = "This API's OpenAPI 3.1 document"),
    )
)]
async fn openapi_document() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        openapi::document_json(),
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/notifications",
    params(
        ("order_id" = Option<String>, Query, description = "List the notifications of this order id"),
        ("correlation_id" = Option<String>, Query, description = "List the notifications of this correlation id"),
        ("customer_id" = Option<String>, Query, description = "List the notifications of this customer id"),
        ("event_type" = Option<String>, Query, description = "Only this event type"),
        ("since" = Option<String>, Query, description = "Only events at or after this RFC 3339 time"),
        ("until" = Option<String>, Query, description = "Only events at or before this RFC 3339 time"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 500 (default 50)", minimum = 1, maximum = 500),
        ("order" = Option<String>, Query, description = "asc (default) or desc, by event time"),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page"),
    ),
    responses(
        (status = 200, body = Page, description = "Summaries in event-time order"),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "The query is not valid (a missing or repeated id, a bad filter, page size or cursor); the detail says what is wrong"),
    )
)]
async fn list_notifications(State(read): State<ReadService>, RawQuery(raw): RawQuery) -> Result<Json<Page>, ApiError> {
    let params = params::list(raw.as_deref()).map_err(ApiError::BadRequest)?;
    Ok(Json(read.page(&params).await?))
}

fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::BadRequest(format!("the path is not valid: {}", rejection.body_text()))
}

#[utoipa::path(
    get,
    path = "/notifications/{id}",
    params(("id" = String, Path, description = "The record id, `{topic}:{partition}:{offset}`")),
    responses(
        (status = 200, body = openapi::NotificationDetail, description = "The record with its payload"),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "The id or the query is not valid; the detail says what is wrong"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json", description = "No notification has this id, or its retention has expired"),
        (status = 410, body = crate::problem::Problem, content_type = "application/problem+json", description = "The notification's payload is no longer stored (expired or deleted)"),
    )
)]
async fn get_notification(
    State(read): State<ReadService>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let id = record_id(id, raw.as_deref())?;
    let body = read.notification(&id).await?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The id of a record route, checked, with no query parameters allowed.
fn record_id(id: Result<Path<String>, PathRejection>, raw: Option<&str>) -> Result<String, ApiError> {
    let Path(id) = id.map_err(path_error)?;
    params::pairs(raw, &[]).map_err(ApiError::BadRequest)?;
    if id.is_empty() || id.len() > MAX_RECORD_ID_BYTES {
        return Err(ApiError::BadRequest(format!(
            "id must be 1 to {MAX_RECORD_ID_BYTES} bytes, not {}",
            id.len()
        )));
    }
    Ok(id)
}

#[utoipa::path(
    get,
    path = "/notifications/{id}/payload",
    params(("id" = String, Path, description = "The record id, `{topic}:{partition}:{offset}`")),
    responses(
        (status = 200, body = Vec<u8>, content_type = "application/octet-stream", description = "The payload's exact bytes; `Repr-Digest` carries their SHA-256", headers(("repr-digest" = String, description = "sha-256=:<base64>: of the bytes (RFC 9530)"))),
        (status = 307, description = "The payload is in S3: `Location` is a presigned URL, valid for five minutes, that answers its exact bytes", headers(("location" = String, description = "The presigned URL"))),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "The id or the query is not valid; the detail says what is wrong"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json", description = "No notification has this id, its retention has expired, or it is a tombstone"),
        (status = 410, body = crate::problem::Problem, content_type = "application/problem+json", description = "The payload is no longer stored (expired or deleted)"),
    )
)]
async fn get_payload(
    State(read): State<ReadService>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let id = record_id(id, raw.as_deref())?;
    match read.payload(&id).await? {
        RawPayload::Link(url) => Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, url)]).into_response()),
        RawPayload::Bytes { bytes, sha256 } => {
            use base64::Engine as _;
            let digest = hex::decode(&sha256).unwrap_or_default();
            let digest = format!("sha-256=:{}:", base64::engine::general_purpose::STANDARD.encode(digest));
            let file_name = id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-', "_");
            Ok((
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{file_name}.bin\""),
                    ),
                    (header::HeaderName::from_static("repr-digest"), digest),
                ],
                bytes,
            )
                .into_response())
        }
    }
}

#[utoipa::path(
    get,
    path = "/correlations/{correlation_id}/timeline",
    params(
        ("correlation_id" = String, Path, description = "The correlation id"),
        ("limit" = Option<u32>, Query, description = "Most steps in one answer, 1 to 1000 (default 1000)", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous answer"),
    ),
    responses(
        (status = 200, body = Timeline, description = "The flow in event-time order, with the time between steps"),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "The correlation id, page size or cursor is not valid; the detail says what is wrong"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json", description = "No notification has this correlation id"),
    )
)]
async fn timeline(
    State(read): State<ReadService>,
    correlation_id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Timeline>, ApiError> {
    let Path(correlation_id) = correlation_id.map_err(path_error)?;
    let correlation_id = params::check_id("correlation_id", &correlation_id).map_err(ApiError::BadRequest)?;
    let pairs = params::pairs(raw.as_deref(), &["limit", "cursor"]).map_err(ApiError::BadRequest)?;
    let get = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let params = ListParams {
        lookup: Lookup::Correlation,
        value: correlation_id.clone(),
        event_type: None,
        since: None,
        until: None,
        limit: params::limit(get("limit"), MAX_TIMELINE_STEPS, MAX_TIMELINE_STEPS).map_err(ApiError::BadRequest)?,
        order: Order::Asc,
        cursor: get("cursor").map(str::to_owned),
    };
    Ok(Json(read.timeline(&params).await?))
}

#[utoipa::path(
    get,
    path = "/search",
    params(
        ("q" = String, Query, description = "Any id: a record id, an order, correlation or customer id"),
        ("limit" = Option<u32>, Query, description = "The first page size of each kind, 1 to 50 (default 10)", minimum = 1, maximum = 50),
    ),
    responses(
        (status = 200, body = SearchAnswer, description = "What the value matched, looked up in parallel, with the first page of each kind; `matched` is empty when nothing did"),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "q is missing, empty or too long, or the limit is not valid; the detail says what is wrong"),
    )
)]
async fn search(State(read): State<ReadService>, RawQuery(raw): RawQuery) -> Result<Json<SearchAnswer>, ApiError> {
    let pairs = params::pairs(raw.as_deref(), &["q", "limit"]).map_err(ApiError::BadRequest)?;
    let get = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let q = get("q").ok_or_else(|| ApiError::BadRequest("q is missing: give the id to look for, as ?q=".into()))?;
    let q = params::check_id("q", q).map_err(ApiError::BadRequest)?;
    let limit = params::limit(get("limit"), SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT).map_err(ApiError::BadRequest)?;
    Ok(Json(read.search(&q, limit).await?))
}

/// Handler-tier tests: real API Gateway HTTP API (payload 2.0) events, as the function receives them through
/// `lambda_http`, answered by the router over the in-memory double of the store's ports.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http_body_util::BodyExt;
    use serde_json::Value;
    use shared::memory::{sample_records, Faults, InMemoryStore};
    use tower::ServiceExt;

    use super::*;
    use crate::cursor::CursorSigner;

    pub(super) fn store() -> Arc<InMemoryStore> {
        let store = Arc::new(InMemoryStore::new());
        for record in sample_records() {
            store.insert(record);
        }
        store
    }

    /// Answers the API Gateway event `fixture` as the deployed function does: status, content type, JSON body.
    async fn answer(store: &Arc<InMemoryStore>, fixture: &str) -> (u16, String, Value) {
        let request = lambda_http::request::from_str(fixture).expect("an API Gateway v2 event");
        let cursors = CursorSigner::new(vec![7; 32], 3600);
        let app = router(ReadService::new(store.clone(), store.clone(), cursors));
        let response = app
            .oneshot(request.map(axum::body::Body::new))
            .await
            .expect("the router answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.into_body().collect().await.expect("a body").to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, content_type, json)
    }

    fn ids(items: &Value) -> Vec<&str> {
        items
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["id"].as_str()).collect())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn an_order_lists_its_notifications_in_event_time_order_a_page_at_a_time() {
        let store = store();
        let (status, content_type, body) = answer(&store, include_str!("../fixtures/list-by-order.json")).await;
        assert_eq!((status, content_type.as_str()), (200, "application/json"), "{body}");
        // o-1 is every fourth record from offset 1, one second apart.
        assert_eq!(ids(&body["items"]), ["t:0:1", "t:0:5", "t:0:9"]);
        assert!(
            body["items"][0].get("payload").is_none(),
            "lists carry summaries, not payloads"
        );
        assert!(body["next_cursor"].is_string(), "{body}");
    }

    #[tokio::test]
    async fn filters_and_descending_order_apply_to_a_customers_history() {
        let store = store();
        let fixture = include_str!("../fixtures/list-by-customer-desc-event-type.json");
        let (status, _, body) = answer(&store, fixture).await;
        assert_eq!(status, 200, "{body}");
        // E0 is every third record: 27, 24, 21, 18 newest first.
        assert_eq!(ids(&body["items"]), ["t:0:27", "t:0:24", "t:0:21", "t:0:18"]);
        assert!(body["items"]
            .as_array()
            .is_some_and(|a| a.iter().all(|i| i["event_type"] == "E0")));
    }

    #[tokio::test]
    async fn a_list_without_an_id_is_a_problem_that_says_so() {
        let store = store();
        let (status, content_type, body) = answer(&store, include_str!("../fixtures/list-without-an-id.json")).await;
        assert_eq!((status, content_type.as_str()), (400, crate::problem::PROBLEM_JSON));
        assert_eq!(body["status"], 400);
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("order_id"), "{detail}");
    }

    #[tokio::test]
    async fn one_notification_comes_with_its_payload_and_an_unknown_one_is_a_404() {
        let store = store();
        let (status, _, body) = answer(&store, include_str!("../fixtures/get-by-id.json")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], "t:0:5");
        assert_eq!(body["payload_encoding"], "json");
        assert_eq!(body["payload"]["orderId"], "o-1");
        let (status, content_type, body) = answer(&store, include_str!("../fixtures/get-missing-id.json")).await;
        assert_eq!(
            (status, content_type.as_str()),
            (404, crate::problem::PROBLEM_JSON),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_correlation_timeline_has_steps_with_the_time_between_them() {
        let store = store();
        let (status, _, body) = answer(&store, include_str!("../fixtures/timeline.json")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["correlation_id"], "k-1");
        let steps = body["steps"].as_array().cloned().unwrap_or_default();
        assert_eq!(steps.len(), 5);
        assert_eq!(steps[0]["since_previous_ms"], Value::Null);
        assert_eq!(steps[1]["since_previous_ms"], 2_000);
        assert_eq!(steps[4]["since_start_ms"], 8_000);
        assert!(body["next_cursor"].is_string(), "{body}");
    }

    #[tokio::test]
    async fn health_and_the_openapi_document_answer_without_touching_the_store() {
        let store = store();
        store.set_faults(Faults {
            down: true,
            ..Faults::default()
        });
        let (status, _, body) = answer(&store, include_str!("../fixtures/health.json")).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
        let (status, _, body) = answer(&store, include_str!("../fixtures/openapi.json")).await;
        assert_eq!(status, 200);
        assert!(body["paths"]["/notifications"].is_object(), "{body}");
    }

    #[tokio::test]
    async fn a_store_that_is_down_is_a_503_problem_and_a_post_is_a_405() {
        let store = store();
        store.set_faults(Faults {
            down: true,
            ..Faults::default()
        });
        let (status, content_type, body) = answer(&store, include_str!("../fixtures/list-by-order.json")).await;
        assert_eq!(
            (status, content_type.as_str()),
            (503, crate::problem::PROBLEM_JSON),
            "{body}"
        );
        assert!(
            !body["detail"].as_str().unwrap_or_default().contains("injected"),
            "causes are logged, not told"
        );
        let (status, _, _) = answer(&store, include_str!("../fixtures/post-not-allowed.json")).await;
        assert_eq!(status, 405);
    }

    /// The API Gateway event of a GET of `path` (percent-encoded) with `query`, as get-by-id.json has it.
    pub(super) fn event(path: &str, query: &str) -> String {
        let mut event: Value = serde_json::from_str(include_str!("../fixtures/get-by-id.json")).unwrap();
        event["rawPath"] = path.into();
        event["requestContext"]["http"]["path"] = path.into();
        event["rawQueryString"] = query.into();
        event.to_string()
    }

    /// What the function answers `event` with, as lambda_http hands it to Lambda: the envelope's JSON bytes
    /// (status, headers, the body as a JSON string or base64), and the response itself.
    async fn respond(read: ReadService, event: &str) -> (Vec<u8>, Value) {
        use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
        let request = lambda_http::request::from_str(event).expect("an API Gateway v2 event");
        let response = router(read)
            .oneshot(request.map(axum::body::Body::new))
            .await
            .expect("the router answers");
        let response = lambda_http::IntoResponse::into_response(response).await;
        let (parts, body) = response.into_parts();
        let mut envelope = ApiGatewayV2httpResponse::default();
        envelope.status_code = i64::from(parts.status.as_u16());
        envelope.is_base64_encoded = matches!(body, lambda_http::Body::Binary(_));
        envelope.headers = parts.headers;
        envelope.body = Some(body);
        let bytes = serde_json::to_vec(&envelope).expect("the envelope serializes");
        let json = serde_json::from_slice(&bytes).expect("the envelope is JSON");
        (bytes, json)
    }

    pub(super) fn service(store: &Arc<InMemoryStore>) -> ReadService {
        ReadService::new(store.clone(), store.clone(), CursorSigner::new(vec![7; 32], 3600))
    }

    fn record(offset: i64, key: Option<Vec<u8>>, payload: Option<Vec<u8>>) -> shared::model::Notification {
        let mut n = sample_records().remove(1);
        n.id = format!("big:0:{offset}");
        n.offset = Some(offset);
        n.occurred_at = format!("2026-11-30T10:00:{:02}.000000Z", offset % 60);
        n.key = key.map(shared::model::Data::from_bytes);
        n.payload_format = shared::model::PayloadFormat::Text;
        n.payload = payload;
        n
    }

    #[tokio::test]
    async fn a_list_of_huge_summaries_stops_early_with_a_cursor_and_every_page_fits_a_lambda_response() {
        let store = Arc::new(InMemoryStore::new());
        // Keys of 300 KB of bytes that are not UTF-8: 400 KB of base64 each in a summary.
        for offset in 0..40 {
            store.insert(record(offset, Some(vec![0xff; 300_000]), Some(b"x".to_vec())));
        }
        let mut seen = Vec::new();
        let mut cursor = String::new();
        let mut pages = 0;
        loop {
            let query = format!("order_id=o-1&limit=500{cursor}");
            let (envelope, answer) = respond(service(&store), &event("/notifications", &query)).await;
            pages += 1;
            assert_eq!(answer["statusCode"], 200, "{}", answer["body"]);
            assert!(
                envelope.len() <= crate::answer::LAMBDA_RESPONSE_LIMIT,
                "page {pages} is {} bytes in Lambda's envelope",
                envelope.len()
            );
            let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
            println!(
                "page {pages}: {} items, {} bytes in the envelope",
                ids(&body["items"]).len(),
                envelope.len()
            );
            seen.extend(ids(&body["items"]).into_iter().map(str::to_owned));
            match body["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        assert!(pages >= 4, "16 MB of summaries took {pages} pages");
        let expected: Vec<String> = (0..40).map(|o| format!("big:0:{o}")).collect();
        assert_eq!(seen, expected, "every record once, in order");
    }

    #[tokio::test]
    async fn a_timeline_of_huge_steps_with_long_distinct_services_comes_in_pages_that_each_fit() {
        let store = Arc::new(InMemoryStore::new());
        for offset in 0..30 {
            let mut n = record(offset, Some(vec![0xff; 250_000]), Some(b"x".to_vec()));
            n.fields.correlation_id = Some("k-huge".into());
            n.fields.source_service = Some(format!("{offset:02}{}", "s".repeat(1_000)));
            store.insert(n);
        }
        let mut steps = 0;
        let mut cursor = String::new();
        loop {
            let path = "/correlations/k-huge/timeline";
            let (envelope, answer) = respond(service(&store), &event(path, cursor.trim_start_matches('&'))).await;
            assert_eq!(answer["statusCode"], 200, "{}", answer["body"]);
            assert!(
                envelope.len() <= crate::answer::LAMBDA_RESPONSE_LIMIT,
                "{} bytes",
                envelope.len()
            );
            let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
            steps += body["steps"].as_array().map_or(0, Vec::len);
            match body["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(steps, 30, "every step once");
    }

    #[tokio::test]
    async fn a_payload_too_large_to_answer_inline_is_linked_and_served_on_its_own() {
        let store = Arc::new(InMemoryStore::new());
        // 1.5 MB of control characters: 6 bytes each as JSON, 7 inside the envelope.
        let payload = vec![0x01u8; 1_500_000];
        store.insert(record(1, None, Some(payload.clone())));
        let (envelope, answer) = respond(service(&store), &event("/notifications/big%3A0%3A1", "")).await;
        assert_eq!(answer["statusCode"], 200, "{}", answer["body"]);
        assert!(envelope.len() <= crate::answer::LAMBDA_RESPONSE_LIMIT);
        println!(
            "1.5 MB of control characters: the record answers in {} bytes",
            envelope.len()
        );
        let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["payload_encoding"], "url");
        assert_eq!(body["payload"], "/notifications/big:0:1/payload");
        assert_eq!(body["payload_size"], 1_500_000);
        assert_eq!(body["payload_sha256"], shared::model::sha256_hex(&payload));

        let (envelope, answer) = respond(service(&store), &event("/notifications/big%3A0%3A1/payload", "")).await;
        assert_eq!(answer["statusCode"], 200, "{}", answer["body"]);
        assert!(envelope.len() <= crate::answer::LAMBDA_RESPONSE_LIMIT);
        println!("and its payload on its own in {} bytes", envelope.len());
        assert_eq!(answer["isBase64Encoded"], true);
        assert_eq!(answer["headers"]["content-type"], "application/octet-stream");
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(answer["body"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, payload);
        let digest =
            base64::engine::general_purpose::STANDARD.encode(hex::decode(shared::model::sha256_hex(&payload)).unwrap());
        assert_eq!(answer["headers"]["repr-digest"], format!("sha-256=:{digest}:"));
    }

    #[tokio::test]
    async fn a_payload_that_fits_is_answered_inline_with_its_digest() {
        let store = Arc::new(InMemoryStore::new());
        store.insert(record(2, None, Some(b"plain text".to_vec())));
        let (_, answer) = respond(service(&store), &event("/notifications/big%3A0%3A2", "")).await;
        let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            (body["payload_encoding"].as_str(), body["payload"].as_str()),
            (Some("text"), Some("plain text"))
        );
        assert_eq!(body["payload_sha256"], shared::model::sha256_hex(b"plain text"));
    }

    #[tokio::test]
    async fn a_payload_too_large_for_any_answer_and_with_nothing_to_link_to_is_a_500_that_says_what_to_change() {
        let store = Arc::new(InMemoryStore::new());
        store.insert(record(3, None, Some(vec![b'a'; 100_000])));
        store.insert(record(4, None, None));
        let read = service(&store).with_budget(50_000);
        let (_, answer) = respond(read.clone(), &event("/notifications/big%3A0%3A3/payload", "")).await;
        assert_eq!(answer["statusCode"], 500, "{}", answer["body"]);
        assert_eq!(answer["headers"]["content-type"], crate::problem::PROBLEM_JSON);
        assert!(answer["body"].as_str().unwrap().contains("PAYLOAD_BUCKET"));
        let (_, answer) = respond(read, &event("/notifications/big%3A0%3A4/payload", "")).await;
        assert_eq!(answer["statusCode"], 404, "a tombstone has no payload");
    }
}

/// Handler tests of the search and the console's routes, through API Gateway events.
#[cfg(test)]
mod console_tests {
    use serde_json::Value;
    use tower::ServiceExt;

    use super::tests::{event, service, store};
    use super::*;

    /// Status, headers and body of the answer to a GET of `path` with `query`.
    async fn get(path: &str, query: &str) -> (u16, axum::http::HeaderMap, Vec<u8>) {
        use http_body_util::BodyExt;
        let request = lambda_http::request::from_str(&event(path, query)).expect("an API Gateway v2 event");
        let response = router(service(&store()))
            .oneshot(request.map(axum::body::Body::new))
            .await
            .expect("the router answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    fn json(body: &[u8]) -> Value {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    }

    #[tokio::test]
    async fn a_search_answers_every_kind_the_value_matched_with_a_first_page() {
        // k-1 is a correlation; o-1 an order; c-1 the customer of every record; t:0:5 a record.
        let (status, _, body) = get("/search", "q=k-1&limit=3").await;
        let answer = json(&body);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["matched"], serde_json::json!(["correlation"]));
        assert_eq!(answer["correlation"]["items"].as_array().map(Vec::len), Some(3));
        assert!(answer["correlation"]["next_cursor"].is_string());
        assert!(answer["order"].is_null() && answer["customer"].is_null() && answer["record"].is_null());

        let (_, _, body) = get("/search", "q=t%3A0%3A5").await;
        let answer = json(&body);
        assert_eq!(answer["matched"], serde_json::json!(["record"]), "{answer}");
        assert_eq!(answer["record"]["id"], "t:0:5");
        assert!(answer["record"].get("payload").is_none(), "a summary, not the payload");

        let (_, _, body) = get("/search", "q=nobody").await;
        let answer = json(&body);
        assert_eq!(answer["matched"], serde_json::json!([]), "{answer}");
    }

    #[tokio::test]
    async fn the_first_page_of_a_search_goes_on_through_the_list_endpoint() {
        let (_, _, body) = get("/search", "q=o-1&limit=2").await;
        let answer = json(&body);
        let cursor = answer["order"]["next_cursor"].as_str().expect("a cursor").to_owned();
        let query = format!("order_id=o-1&limit=5&cursor={}", urlencode(&cursor));
        let (status, _, body) = get("/notifications", &query).await;
        let page = json(&body);
        assert_eq!(status, 200, "{page}");
        let ids: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["id"].as_str())
            .collect();
        // o-1 is every fourth record from offset 1; the search showed t:0:1 and t:0:5.
        assert_eq!(ids, ["t:0:9", "t:0:13", "t:0:17", "t:0:21", "t:0:25"]);
    }

    fn urlencode(text: &str) -> String {
        form_urlencoded::byte_serialize(text.as_bytes()).collect()
    }

    #[tokio::test]
    async fn a_bad_search_is_a_problem_that_says_what_is_wrong() {
        for (query, says) in [
            ("", "q is missing"),
            ("q=", "q is empty"),
            ("q=o-1&limit=0", "limit"),
            ("q=o-1&limit=51", "limit"),
            ("q=o-1&q=o-2", "more than once"),
            ("q=o-1&order_id=o-1", "unknown query parameter"),
        ] {
            let (status, headers, body) = get("/search", query).await;
            assert_eq!(status, 400, "{query}");
            assert_eq!(headers[header::CONTENT_TYPE], crate::problem::PROBLEM_JSON);
            let detail = json(&body)["detail"].as_str().unwrap_or_default().to_owned();
            assert!(detail.contains(says), "{query}: {detail}");
        }
        let long = format!("q={}", "x".repeat(crate::params::MAX_ID_BYTES + 1));
        let (status, _, _) = get("/search", &long).await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn every_console_page_is_the_shell_under_a_strict_content_security_policy() {
        for path in [
            "/console/",
            "/console/orders/o-1",
            "/console/customers/c-1",
            "/console/correlations/k-1",
            "/console/records/t%3A0%3A5",
            "/console/orders/a%2Fb%20c",
        ] {
            let (status, headers, body) = get(path, "").await;
            assert_eq!(status, 200, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8", "{path}");
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                crate::console::CONTENT_SECURITY_POLICY,
                "{path}"
            );
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(body, crate::console::SHELL.as_bytes(), "{path}");
        }
        let policy = crate::console::CONTENT_SECURITY_POLICY;
        assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"));
        let (status, _, body) = get("/console", "").await;
        assert_eq!((status, body.as_slice()), (200, crate::console::SHELL.as_bytes()));
        // An id whose `%2F` API Gateway has already decoded into a `/` still gets the page.
        let (status, _, body) = get("/console/orders/a/b", "").await;
        assert_eq!((status, body.as_slice()), (200, crate::console::SHELL.as_bytes()));
    }

    #[tokio::test]
    async fn the_assets_are_served_from_the_binary_with_their_types() {
        for (name, content, media_type) in crate::console::ASSETS {
            let (status, headers, body) = get(&format!("/console/assets/{name}"), "").await;
            assert_eq!(status, 200, "{name}");
            assert_eq!(headers[header::CONTENT_TYPE], media_type, "{name}");
            assert_eq!(body, content.as_bytes(), "{name}");
        }
    }

    /// A console path that names nothing is a page that says so, as HTML, never a 5xx; the message is text.
    #[tokio::test]
    async fn a_bad_console_path_is_a_clear_page() {
        let long = format!("/console/orders/{}", "x".repeat(crate::params::MAX_ID_BYTES + 1));
        for (path, status, says) in [
            ("/console/invoices/1", 404, "no such page"),
            ("/console/assets/missing.js", 404, "no such file"),
            ("/console/orders/%20", 400, "1 to 8192 bytes"),
            ("/console/orders/%FF%FE", 400, "not valid"),
            (long.as_str(), 400, "8193 bytes"),
            ("/console/assets/%3Cscript%3E", 404, "no such file"),
        ] {
            let (got, headers, body) = get(path, "").await;
            let text = String::from_utf8_lossy(&body);
            assert_eq!(got, status, "{path}: {text}");
            assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8", "{path}");
            assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY), "{path}");
            assert!(text.contains(says), "{path}: {text}");
            assert!(!text.contains("<script>"), "{path}");
        }
    }
}
