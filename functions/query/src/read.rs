//! The read service: what the routes ask of the store, in the domain's terms. It pages summaries for a lookup
//! (signing and checking cursors), reads one notification with its payload, and assembles timelines; the
//! routes only parse requests and write answers.

use std::sync::Arc;

use serde::Serialize;
use shared::model::{NotificationView, Summary};
use shared::ports::{IndexQuery, NotificationIndex, NotificationReader, Position};

use crate::cursor::{query_digest, CursorSigner};
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

/// The read side over the store's ports.
#[derive(Clone)]
pub struct ReadService {
    index: Arc<dyn NotificationIndex>,
    reader: Arc<dyn NotificationReader>,
    cursors: CursorSigner,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl ReadService {
    pub fn new(index: Arc<dyn NotificationIndex>, reader: Arc<dyn NotificationReader>, cursors: CursorSigner) -> Self {
        ReadService { index, reader, cursors }
    }

    /// One page of summaries for validated parameters.
    pub async fn page(&self, params: &ListParams) -> Result<Page, ApiError> {
        let identity = params.identity();
        let digest = query_digest(&identity.iter().map(String::as_str).collect::<Vec<_>>());
        let mut after: Option<Position> = match &params.cursor {
            Some(cursor) => Some(
                self.cursors
                    .verify(cursor, &digest, now())
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?,
            ),
            None => None,
        };
        let mut items: Vec<Summary> = Vec::new();
        let mut next: Option<Position> = None;
        for _ in 0..MAX_QUERIES_PER_PAGE {
            let wanted = params.limit - items.len();
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
                after: after.take(),
            };
            let page = self.index.page(&query).await?;
            if page.items.len() > wanted {
                // Cut mid-page: continue right after the last item handed out.
                let mut taken = page.items.into_iter().take(wanted);
                for indexed in taken.by_ref() {
                    next = Some(indexed.position);
                    items.push(indexed.summary);
                }
                break;
            }
            items.extend(page.items.into_iter().map(|indexed| indexed.summary));
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
        let next_cursor = next.map(|position| self.cursors.issue(&digest, position, now()));
        Ok(Page { items, next_cursor })
    }

    /// One notification with its payload rendered for people.
    pub async fn notification(&self, id: &str) -> Result<NotificationView, ApiError> {
        match self.reader.get(id).await? {
            Some(notification) => Ok(notification.into_view()),
            None => Err(ApiError::NotFound(format!("no notification with id {id:?}"))),
        }
    }

    /// The flow of one correlation id, a page of steps at a time.
    pub async fn timeline(&self, params: &ListParams) -> Result<Timeline, ApiError> {
        let page = self.page(params).await?;
        build_timeline(&params.value, page.items, page.next_cursor)
            .ok_or_else(|| ApiError::NotFound(format!("no notifications with correlation id {:?}", params.value)))
    }
}
