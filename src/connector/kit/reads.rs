//! The reading side of an adapter.

use async_trait::async_trait;

use super::adapter::Adapter;
use crate::connector::{ConnectorError, PageStream};
use crate::model::{AccountRecord, EntitlementRecord, GrantRecord};

/// What an adapter reads from its target. The streams yield one item per page as the
/// target (or, for unpaged lists, the adapter's `page_size`) delivers it, with the
/// anomalies its mapping tolerated; an `Err` item ends the stream and fails the whole run.
#[async_trait]
pub trait Reads: Adapter {
    /// Authenticates and makes one cheap read.
    async fn probe(&self) -> Result<(), ConnectorError>;

    /// Every account, page by page.
    fn account_pages(&self) -> PageStream<'_, AccountRecord>;

    /// Every entitlement, page by page.
    fn entitlement_pages(&self) -> PageStream<'_, EntitlementRecord>;

    /// Every grant, page by page.
    fn grant_pages(&self) -> PageStream<'_, GrantRecord>;

    /// The account with login name `name` (without letter case), read from the target.
    async fn find_account(&self, name: &str) -> Result<Option<AccountRecord>, ConnectorError>;
}
