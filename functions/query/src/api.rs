//! The HTTP API (BRIEF §7) as one axum router: run by `lambda_http` in Lambda and by a plain server locally.
//! No endpoint scans the table: lists and timelines query an index, one notification is a GetItem.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use sha2::{Digest, Sha256};
use shared::item::{self, Item, StoredPayload};
use shared::model::{render_payload, Header, NotificationView, Summary};
use shared::store::{BlobGet, IndexQuery, IndexRead, ItemGet};
use shared::table::{self, Lookup};

use crate::cursor::{query_digest, CursorSigner, Position};
use crate::openapi;
use crate::params::{self, ListParams, Order};
use crate::problem::ApiError;

/// The largest payload served (DynamoDB and S3 hold what the trigger delivered: at most 6 MB).
const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
/// The most index queries one page may take before it answers with what it has and a cursor.
const MAX_QUERIES_PER_PAGE: usize = 10;
/// The longest timeline served in one answer.
pub const MAX_TIMELINE_STEPS: usize = 1000;

/// What the handlers need: one narrow port per capability.
#[derive(Clone)]
pub struct AppState {
    pub index: Arc<dyn IndexRead>,
    pub items: Arc<dyn ItemGet>,
    pub blobs: Arc<dyn BlobGet>,
    pub cursors: CursorSigner,
}

/// A page of notification summaries.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Page {
    pub items: Vec<Summary>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One step of a correlation's flow.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Step {
    #[serde(flatten)]
    pub notification: Summary,
    /// Milliseconds since the previous step (`null` for the first).
    pub since_previous_ms: Option<i64>,
    /// Milliseconds since the first step.
    pub since_start_ms: i64,
}

/// The flow of one correlation id across services, in event-time order.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Timeline {
    pub correlation_id: String,
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: i64,
    /// The services involved, in the order they first appear.
    pub services: Vec<String>,
    pub steps: Vec<Step>,
    /// Set when the flow has more steps than one answer holds: pass as `cursor` for the rest.
    pub next_cursor: Option<String>,
}

/// The health answer.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// The router with every endpoint.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi_document))
        .route("/notifications", get(list_notifications))
        .route("/notifications/{id}", get(get_notification))
        .route("/correlations/{correlation_id}/timeline", get(timeline))
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
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "An internal error occurred; it has been logged"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "The service or its store (DynamoDB, S3) is busy or unavailable; try again shortly"),
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
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "An internal error occurred; it has been logged"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "The service or its store (DynamoDB, S3) is busy or unavailable; try again shortly"),
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

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn position_of(item: &Item, lookup: Lookup) -> Option<Position> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(text)) => Some(text.clone()),
        _ => None,
    };
    Some(Position {
        id: text(table::PARTITION_KEY)?,
        index_key: text(lookup.index().partition_key)?,
        sort_key: text(table::EVENT_SORT_KEY)?,
    })
}

fn start_key(position: &Position, lookup: Lookup) -> Item {
    HashMap::from([
        (table::PARTITION_KEY.to_owned(), AttributeValue::S(position.id.clone())),
        (
            lookup.index().partition_key.to_owned(),
            AttributeValue::S(position.index_key.clone()),
        ),
        (
            table::EVENT_SORT_KEY.to_owned(),
            AttributeValue::S(position.sort_key.clone()),
        ),
    ])
}

/// Reads one page of summaries for validated parameters.
async fn read_page(state: &AppState, params: &ListParams) -> Result<(Vec<Summary>, Option<String>), ApiError> {
    let identity = params.identity();
    let digest = query_digest(&identity.iter().map(String::as_str).collect::<Vec<_>>());
    let mut start = match &params.cursor {
        Some(cursor) => {
            let position = state
                .cursors
                .verify(cursor, &digest, now())
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            if position.index_key != table::index_key(&params.value) {
                return Err(ApiError::BadRequest("cursor belongs to a different query".into()));
            }
            Some(start_key(&position, params.lookup))
        }
        None => None,
    };
    let mut items: Vec<Item> = Vec::new();
    let mut next: Option<Position> = None;
    for _ in 0..MAX_QUERIES_PER_PAGE {
        let wanted = params.limit - items.len();
        let query = IndexQuery {
            lookup: params.lookup,
            value: params.value.clone(),
            from: params.since.clone(),
            // `#~` sorts after every `{time}#{id}` of that same time.
            to: params.until.as_ref().map(|u| format!("{u}#~")),
            event_type: params.event_type.clone(),
            ascending: params.order == Order::Asc,
            // Evaluate a little more than needed when filtering, so that sparse matches take fewer round trips.
            limit: if params.event_type.is_some() {
                (wanted * 2).clamp(wanted, 1000) as i32
            } else {
                wanted as i32
            },
            start: start.take(),
        };
        let page = state.index.query_index(&query).await?;
        let returned = page.items.len();
        if returned > wanted {
            // Cut mid-page: continue right after the last item handed out.
            items.extend(page.items.into_iter().take(wanted));
            next = items.last().and_then(|i| position_of(i, params.lookup));
            break;
        }
        items.extend(page.items);
        match page.last_key {
            Some(last) if items.len() < params.limit => start = Some(last),
            Some(last) => {
                next = position_of(&last, params.lookup);
                break;
            }
            None => break,
        }
    }
    if next.is_none() {
        if let Some(last) = start {
            // The query budget ran out before the page filled: continue from where DynamoDB stopped.
            next = position_of(&last, params.lookup);
        }
    }
    let summaries = items
        .iter()
        .map(item::summary_from_item)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let cursor = next.map(|position| state.cursors.issue(&digest, position, now()));
    Ok((summaries, cursor))
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
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "An internal error occurred; it has been logged"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "The service or its store (DynamoDB, S3) is busy or unavailable; try again shortly"),
    )
)]
async fn list_notifications(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Json<Page>, ApiError> {
    let params = params::list(raw.as_deref()).map_err(ApiError::BadRequest)?;
    let (items, next_cursor) = read_page(&state, &params).await?;
    Ok(Json(Page { items, next_cursor }))
}

fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::BadRequest(format!("the path is not valid: {}", rejection.body_text()))
}

async fn fetch_blob(state: &AppState, pointer: &item::S3Pointer) -> Result<Vec<u8>, ApiError> {
    let bytes = state.blobs.get_blob(&pointer.bucket, &pointer.key).await?;
    let digest = hex::encode(Sha256::digest(&bytes));
    if bytes.len() as u64 != pointer.size || digest != pointer.sha256 {
        return Err(ApiError::Internal(format!(
            "object s3://{}/{} does not match its record (size {} vs {}, sha256 {digest} vs {})",
            pointer.bucket,
            pointer.key,
            bytes.len(),
            pointer.size,
            pointer.sha256
        )));
    }
    Ok(bytes)
}

#[utoipa::path(
    get,
    path = "/notifications/{id}",
    params(("id" = String, Path, description = "The record id, `{topic}:{partition}:{offset}`")),
    responses(
        (status = 200, body = openapi::NotificationDetail, description = "The record with its payload"),
        (status = 400, body = crate::problem::Problem, content_type = "application/problem+json", description = "The id or the query is not valid; the detail says what is wrong"),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json", description = "No notification has this id"),
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "An internal error occurred; it has been logged"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "The service or its store (DynamoDB, S3) is busy or unavailable; try again shortly"),
    )
)]
async fn get_notification(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(path_error)?;
    params::pairs(raw.as_deref(), &[]).map_err(ApiError::BadRequest)?;
    if id.is_empty() || id.len() > 1024 {
        return Err(ApiError::BadRequest(format!(
            "id must be 1 to 1024 bytes, not {}",
            id.len()
        )));
    }
    let Some(found) = state.items.get_item(&id).await? else {
        return Err(ApiError::NotFound(format!("no notification with id {id:?}")));
    };
    let record = item::record_from_item(&found).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut summary = record.summary;
    let mut headers: Vec<Header> = record.headers;
    if let Some(pointer) = &record.extras {
        let bytes = fetch_blob(&state, pointer).await?;
        let (key, extra_headers) = item::parse_extras(&bytes).map_err(ApiError::Internal)?;
        summary.key = key;
        headers = extra_headers;
    }
    let payload = match record.payload {
        StoredPayload::None => None,
        StoredPayload::Inline(bytes) => Some(bytes),
        StoredPayload::Zstd(compressed) => Some(
            item::decompress(&compressed, (summary.payload_size as usize).clamp(1, MAX_PAYLOAD_BYTES))
                .map_err(ApiError::Internal)?,
        ),
        StoredPayload::S3(pointer) => Some(fetch_blob(&state, &pointer).await?),
    };
    let view = NotificationView {
        payload: render_payload(payload.as_deref(), summary.payload_format),
        summary,
        headers,
    };
    // Serialized directly (not through serde_json::Value) so JSON payloads keep their exact bytes.
    let body = serde_json::to_vec(&view).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn millis_between(a: &str, b: &str) -> Option<i64> {
    let a = chrono::DateTime::parse_from_rfc3339(a).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b).ok()?;
    Some((b - a).num_milliseconds())
}

/// Builds a timeline from summaries in event-time order.
pub fn build_timeline(correlation_id: &str, items: Vec<Summary>, next_cursor: Option<String>) -> Option<Timeline> {
    let first = items.first()?.occurred_at.clone();
    let last = items.last()?.occurred_at.clone();
    let mut services: Vec<String> = Vec::new();
    let mut previous: Option<String> = None;
    let mut steps = Vec::with_capacity(items.len());
    for summary in items {
        if let Some(service) = &summary.fields.source_service {
            if !services.contains(service) {
                services.push(service.clone());
            }
        }
        let since_previous_ms = previous
            .as_deref()
            .and_then(|p| millis_between(p, &summary.occurred_at));
        let since_start_ms = millis_between(&first, &summary.occurred_at).unwrap_or(0);
        previous = Some(summary.occurred_at.clone());
        steps.push(Step {
            notification: summary,
            since_previous_ms,
            since_start_ms,
        });
    }
    Some(Timeline {
        correlation_id: correlation_id.to_owned(),
        duration_ms: millis_between(&first, &last).unwrap_or(0),
        started_at: first,
        ended_at: last,
        services,
        steps,
        next_cursor,
    })
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
        (status = 500, body = crate::problem::Problem, content_type = "application/problem+json", description = "An internal error occurred; it has been logged"),
        (status = 503, body = crate::problem::Problem, content_type = "application/problem+json", description = "The service or its store (DynamoDB, S3) is busy or unavailable; try again shortly"),
    )
)]
async fn timeline(
    State(state): State<AppState>,
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
    let (items, next_cursor) = read_page(&state, &params).await?;
    build_timeline(&correlation_id, items, next_cursor)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no notifications with correlation id {correlation_id:?}")))
}
