//! Reading Duck Creek: the users of one entity (accounts), the roles, entities and
//! privileges (entitlements), and each user's roles and entity memberships (grants). Lists
//! are not paged: each is one answer, read as a stream and handed on `page_size` records at a
//! time, so memory holds one batch of records, never the document.

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::batch::{
    entities_spec, privileges_spec, roles_spec, users_spec, Item, ListReader, ListSpec,
};
use super::wire::{map_entity, map_privilege, map_role, map_user, map_user_grants, Catalogue};
use super::DuckCreekConnector;
use crate::connector::kit::Reads;
use crate::connector::soap::CallKind;
use crate::connector::{Anomaly, ConnectorError, Page, PageStream};
use crate::model::{AccountRecord, EntitlementRecord, GrantRecord};

/// Turns an item of list N into records, with a context read before the lists (the
/// catalogue, for grants), noting what it tolerates.
type ItemMapper<C, T> =
    fn(&str, &C, usize, &Item, &mut Vec<Anomaly>) -> Result<Vec<T>, ConnectorError>;

/// Where a page stream is.
enum PagesState<'a, C> {
    Start {
        context: BoxFuture<'a, Result<C, ConnectorError>>,
        specs: Vec<ListSpec>,
    },
    Reading {
        reader: Box<ListReader<'a>>,
        context: C,
    },
    Done,
}

#[async_trait]
impl Reads for DuckCreekConnector {
    /// A batch with only the login and the close.
    async fn probe(&self) -> Result<(), ConnectorError> {
        let mut batch = self.open_batch("login", "", CallKind::Read).await?;
        batch.finish().await
    }

    /// Every account: `OnlineData.listEntityUsersRq entityID` → `Users/User`.
    fn account_pages(&self) -> PageStream<'_, AccountRecord> {
        self.pages(
            "users",
            vec![users_spec(&self.entity_id)],
            futures::future::ready(Ok(())).boxed(),
            |target, _: &(), _, item, anomalies| Ok(vec![map_user(target, item, anomalies)?]),
        )
    }

    /// Every entitlement, in one batch: `Security.listRolesRq` (type `Role`),
    /// `OnlineData.listEntitiesRq` (`Entities/*`, type `Entity`) and
    /// `Security.listPrivilegesRq` (type `Privilege`, a catalogue only: privileges attach to
    /// roles, not users).
    fn entitlement_pages(&self) -> PageStream<'_, EntitlementRecord> {
        self.pages(
            "roles, entities and privileges",
            vec![roles_spec(), entities_spec(), privileges_spec()],
            futures::future::ready(Ok(())).boxed(),
            |target, _: &(), list, item, _| {
                let record = match list {
                    0 => map_role(target, &item.element)?,
                    1 => map_entity(target, &item.element)?,
                    _ => map_privilege(target, &item.element)?,
                };
                Ok(vec![record])
            },
        )
    }

    /// Every grant: roles and entities first (to turn the names that user records carry
    /// into ids), then the user list again: `Roles/Role/@name` → `Role` grants,
    /// `UserEntityMemberships/UserEntityMembership/@entityName` → `Entity` grants. A name the
    /// catalogue lacks becomes the entitlement's id.
    fn grant_pages(&self) -> PageStream<'_, GrantRecord> {
        self.pages(
            "users",
            vec![users_spec(&self.entity_id)],
            self.catalogue().boxed(),
            |target, catalogue, _, item, anomalies| {
                map_user_grants(target, catalogue, item, anomalies)
            },
        )
    }

    /// The user list, read until the user named `name` (without letter case).
    async fn find_account(&self, name: &str) -> Result<Option<AccountRecord>, ConnectorError> {
        let mut reader = self
            .open_lists("users", vec![users_spec(&self.entity_id)])
            .await?;
        while let Some((_, item)) = reader.next_item().await? {
            if item
                .element
                .attr("name")
                .is_some_and(|found| found.trim().eq_ignore_ascii_case(name.trim()))
            {
                // A lookup, not an import: what the mapping tolerated is not counted.
                return Ok(Some(map_user(self.core.target(), &item, &mut Vec::new())?));
            }
        }
        Ok(None)
    }
}

impl DuckCreekConnector {
    /// Streams pages of the records `map` makes of the items of the lists `specs`, after
    /// `context` (read first) is ready. The stream ends at the first error, and only after
    /// the whole answer has been read and found complete.
    fn pages<'a, C, T>(
        &'a self,
        what: &'static str,
        specs: Vec<ListSpec>,
        context: BoxFuture<'a, Result<C, ConnectorError>>,
        map: ItemMapper<C, T>,
    ) -> PageStream<'a, T>
    where
        C: Send + Sync + 'a,
        T: Send + 'a,
    {
        let page_size = usize::try_from(self.core.page_size()).unwrap_or(usize::MAX);
        let start = PagesState::Start { context, specs };
        futures::stream::try_unfold(start, move |state| async move {
            let (mut reader, context) = match state {
                PagesState::Done => return Ok(None),
                PagesState::Start { context, specs } => {
                    let context = context.await?;
                    (self.open_lists(what, specs).await?, context)
                }
                PagesState::Reading { reader, context } => (*reader, context),
            };
            let mut page = Vec::new();
            let mut anomalies = Vec::new();
            while page.len() < page_size {
                match reader.next_item().await? {
                    Some((list, item)) => page.extend(map(
                        self.core.target(),
                        &context,
                        list,
                        &item,
                        &mut anomalies,
                    )?),
                    None => {
                        let last = !page.is_empty() || !anomalies.is_empty();
                        let page = Page::new(page, anomalies);
                        return Ok(last.then_some((page, PagesState::Done)));
                    }
                }
            }
            Ok(Some((
                Page::new(page, anomalies),
                PagesState::Reading {
                    reader: Box::new(reader),
                    context,
                },
            )))
        })
        .boxed()
    }

    /// The role and entity catalogue, to turn the names in user records into ids.
    async fn catalogue(&self) -> Result<Catalogue, ConnectorError> {
        let mut reader = self
            .open_lists("roles and entities", vec![roles_spec(), entities_spec()])
            .await?;
        let target = self.core.target();
        let mut catalogue = Catalogue::default();
        while let Some((list, item)) = reader.next_item().await? {
            let (record, index) = match list {
                0 => (map_role(target, &item.element)?, &mut catalogue.roles),
                _ => (map_entity(target, &item.element)?, &mut catalogue.entities),
            };
            index.insert(target, &record)?;
        }
        Ok(catalogue)
    }
}
