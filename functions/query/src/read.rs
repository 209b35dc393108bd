//! The read service: what the routes ask of the store, in the domain's terms. It pages summaries for a lookup
//! (signing and checking cursors), reads one notification with its payload, and assembles timelines; the
//! routes only parse requests and write answers.

use std::sync::Arc;

use serde::Serialize;
use shared::model::{RenderedPayload, Summary};
use shared::ports::{Found, IndexQuery, Lookup, NotificationIndex, NotificationReader, Position, ReadOptions};

use crate::answer;
use crate::cursor::{query_digest, CursorError, CursorSigner};
use crate::params::{ListParams, Order};
use crate::problem::ApiError;
use crate::timeline::{build_timeline, Timeline};

/// The most index queries one page may take before it answers with what it has and a cursor.
const MAX_QUERIES_PER_PAGE: usize = 10;

/// A page of notification summaries.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Page {
    pub items: Vec<Summary>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// What a value matched (`GET /search?q=`): the record it names and the first page of each index it is a key
/// of. A kind it did not match is `null`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SearchAnswer {
    /// The value looked up.
    pub q: String,
    /// The kinds it matched, in this order: `record`, `order`, `correlation`, `customer`.
    pub matched: Vec<String>,
    /// The record whose id it is.
    pub record: Option<Summary>,
    /// The first page of the order's notifications; its `next_cursor` goes on through
    /// `GET /notifications?order_id=...`.
    pub order: Option<Page>,
    /// The first page of the correlation's notifications (`GET /notifications?correlation_id=...` goes on).
    pub correlation: Option<Page>,
    /// The first page of the customer's notifications (`GET /notifications?customer_id=...` goes on).
    pub customer: Option<Page>,
}

/// Whether `value` has the shape of a record id, `{topic}:{partition}:{offset}`.
fn looks_like_record_id(value: &str) -> bool {
    let mut parts = value.rsplitn(3, ':');
    let (Some(offset), Some(partition), Some(topic)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !topic.is_empty()
        && value.len() <= crate::routes::MAX_RECORD_ID_BYTES
        && offset.parse::<i64>().is_ok()
        && partition.parse::<i64>().is_ok()
}

/// The read side over the store's ports.
#[derive(Clone)]
pub struct ReadService {
    index: Arc<dyn NotificationIndex>,
    reader: Arc<dyn NotificationReader>,
    cursors: CursorSigner,
    /// What one answer's body may take in Lambda's response envelope.
    budget: usize,
}

/// A payload on its own (`GET /notifications/{id}/payload`).
#[derive(Debug)]
pub enum RawPayload {
    /// The exact bytes and their SHA-256 (hex).
    Bytes { bytes: Vec<u8>, sha256: String },
    /// A short-lived URL that answers the exact bytes.
    Link(String),
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl ReadService {
    pub fn new(index: Arc<dyn NotificationIndex>, reader: Arc<dyn NotificationReader>, cursors: CursorSigner) -> Self {
        ReadService {
            index,
            reader,
            cursors,
            budget: answer::BODY_BUDGET,
        }
    }

    /// Answers within `budget` bytes of body instead of Lambda's (tests use a small one).
    pub fn with_budget(mut self, budget: usize) -> Self {
        self.budget = budget;
        self
    }

    /// One page of summaries for validated parameters.
    pub async fn page(&self, params: &ListParams) -> Result<Page, ApiError> {
        let identity = params.identity();
        let digest = query_digest(&identity.iter().map(String::as_str).collect::<Vec<_>>());
        let mut after: Option<Position> = match &params.cursor {
            Some(cursor) => Some(self.verify(cursor, &digest).await?),
            None => None,
        };
        let mut items: Vec<Summary> = Vec::new();
        let mut next: Option<Position> = None;
        // The page stops early, with a cursor, before its answer would outgrow Lambda's response limit.
        let mut used = 0usize;
        'queries: for _ in 0..MAX_QUERIES_PER_PAGE {
            let wanted = params.limit - items.len();
            let start = after.take();
            let query = IndexQuery {
                lookup: params.lookup,
                value: params.value.clone(),
                since: params.since.clone(),
                until: params.until.clone(),
                event_type: params.event_type.clone(),
                ascending: params.order == Order::Asc,
                // Evaluate a little more than needed when filtering, so that sparse matches take fewer round trips.
                limit: if params.event_type.is_some() {
                    (wanted * 2).clamp(wanted, 1000)
                } else {
                    wanted
                },
                after: start.clone(),
            };
            let page = self.index.page(&query).await?;
            // Where the answer goes on from if it is cut: after the last item taken from this page, or where
            // this page started.
            let mut last_taken: Option<Position> = start;
            for indexed in page.items {
                let size = answer::summary_len(&indexed.summary);
                if items.len() == params.limit || (!items.is_empty() && used + size > self.budget) {
                    // Cut mid-page: continue right after the last item handed out.
                    next = last_taken;
                    break 'queries;
                }
                used += size;
                last_taken = Some(indexed.position);
                items.push(indexed.summary);
            }
            match page.last {
                Some(last) if items.len() < params.limit => after = Some(last),
                Some(last) => {
                    next = Some(last);
                    break;
                }
                None => break,
            }
        }
        if next.is_none() {
            // The query budget ran out before the page filled: continue from where the store stopped.
            next = after;
        }
        if next.is_some() {
            self.cursors.refresh().await;
        }
        let next_cursor = next.map(|position| self.cursors.issue(&digest, position, now()));
        Ok(Page { items, next_cursor })
    }

    /// Checks a cursor; one signed with a key this instance does not hold yet (a rotated secret) makes it read
    /// its keys again.
    async fn verify(&self, cursor: &str, digest: &str) -> Result<Position, ApiError> {
        let verified = match self.cursors.verify(cursor, digest, now()) {
            Err(CursorError::BadSignature) if self.cursors.reload().await => self.cursors.verify(cursor, digest, now()),
            verified => verified,
        };
        verified.map_err(|e| ApiError::BadRequest(e.to_string()))
    }

    async fn found(&self, id: &str) -> Result<Found, ApiError> {
        self.reader
            .read(id, ReadOptions::default())
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no notification with id {id:?}")))
    }

    /// One notification with its payload rendered for people, as the JSON body of the answer. A payload too
    /// large for the answer is given as a URL (`payload_encoding` `url`): a presigned S3 URL when it is in S3,
    /// else this API's `/notifications/{id}/payload`. Serialized here, not through `serde_json::Value`, so
    /// JSON payloads keep their exact bytes.
    pub async fn notification(&self, id: &str) -> Result<Vec<u8>, ApiError> {
        let Found { notification, link } = self.found(id).await?;
        let payload_path = format!("/notifications/{}/payload", notification.id);
        let mut view = notification.into_view();
        if let Some(link) = link {
            view.summary.payload_size = link.size;
            view.payload_sha256 = Some(link.sha256);
            view.payload = RenderedPayload::Url(link.url);
            return serde_json::to_vec(&view).map_err(ApiError::internal);
        }
        let body = serde_json::to_vec(&view).map_err(ApiError::internal)?;
        if answer::escaped_len(&body) <= self.budget {
            return Ok(body);
        }
        view.payload = RenderedPayload::Url(payload_path);
        let body = serde_json::to_vec(&view).map_err(ApiError::internal)?;
        if answer::escaped_len(&body) > self.budget {
            // Only a key and headers kept in S3 (over the item limit) can make even this too large.
            return Err(ApiError::TooLarge(format!(
                "notification {id:?} is too large for a Lambda response even without its payload: its key and \
                 headers alone take {} bytes",
                body.len()
            )));
        }
        Ok(body)
    }

    /// One notification's payload, exactly as it came: its bytes, or a link to them when they are too large
    /// for an answer.
    pub async fn payload(&self, id: &str) -> Result<RawPayload, ApiError> {
        let Found { notification, link } = self.found(id).await?;
        if let Some(link) = link {
            return Ok(RawPayload::Link(link.url));
        }
        let Some(bytes) = notification.payload else {
            return Err(ApiError::NotFound(format!(
                "notification {id:?} is a tombstone: it has no payload"
            )));
        };
        if answer::base64_len(bytes.len()) > self.budget {
            return Err(ApiError::TooLarge(format!(
                "the payload of {id:?} is {} bytes, too large for a Lambda response and stored without a \
                 payload bucket to link to; set PAYLOAD_BUCKET so that ingest keeps such payloads in S3",
                bytes.len()
            )));
        }
        let sha256 = shared::model::sha256_hex(&bytes);
        Ok(RawPayload::Bytes { bytes, sha256 })
    }

    /// Looks `value` up everywhere at once: as a record id (when it has that shape) and in the order,
    /// correlation and customer indexes, each with a first page of `limit` in event-time order. The pages share
    /// the answer's budget.
    pub async fn search(&self, value: &str, limit: usize) -> Result<SearchAnswer, ApiError> {
        // Each page stops at a quarter of the answer's budget (a page always takes its first summary, at most
        // ~0.5 MB once escaped: keys and headers are bounded at ingest), and the record is one summary and `q`
        // at most 8 KB: three quarters plus one summary stay under the budget, which is under Lambda's limit.
        let pages = self.clone().with_budget(self.budget / 4);
        let first_page = |lookup| {
            let params = ListParams {
                lookup,
                value: value.to_owned(),
                event_type: None,
                since: None,
                until: None,
                limit,
                order: Order::Asc,
                cursor: None,
            };
            let pages = pages.clone();
            async move {
                let page = pages.page(&params).await?;
                Ok::<_, ApiError>((!page.items.is_empty()).then_some(page))
            }
        };
        let record = async {
            if !looks_like_record_id(value) {
                return Ok(None);
            }
            // Only the summary is answered: a payload in S3 stays there (a link is made, not a read).
            let options = ReadOptions {
                inline_max: 0,
                ..ReadOptions::default()
            };
            match self.reader.read(value, options).await {
                Ok(found) => Ok(found.map(|found| found.notification.summary())),
                // A record whose payload object has gone is answered as a 410 by its own route; the search does
                // not fail for it.
                Err(shared::ports::ReadError::Gone { .. }) => Ok(None),
                Err(err) => Err(ApiError::from(err)),
            }
        };
        let (record, order, correlation, customer) = tokio::try_join!(
            record,
            first_page(Lookup::Order),
            first_page(Lookup::Correlation),
            first_page(Lookup::Customer)
        )?;
        let matched = [
            ("record", record.is_some()),
            ("order", order.is_some()),
            ("correlation", correlation.is_some()),
            ("customer", customer.is_some()),
        ]
        .into_iter()
        .filter(|(_, hit)| *hit)
        .map(|(kind, _)| kind.to_owned())
        .collect();
        Ok(SearchAnswer {
            q: value.to_owned(),
            matched,
            record,
            order,
            correlation,
            customer,
        })
    }

    /// The flow of one correlation id, a page of steps at a time.
    pub async fn timeline(&self, params: &ListParams) -> Result<Timeline, ApiError> {
        let page = self.page(params).await?;
        build_timeline(&params.value, page.items, page.next_cursor)
            .ok_or_else(|| ApiError::NotFound(format!("no notifications with correlation id {:?}", params.value)))
    }
}
