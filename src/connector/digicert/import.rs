//! Reading DigiCert: the users page by page (accounts, and grants from the same pages), the
//! containers and their roles (entitlements), one user by id or by name.

use std::collections::{HashSet, VecDeque};

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Map, Value};

use super::wire::{
    is_top_level, map_container, map_roles, map_user, map_user_grants, ContainersBody, RolesBody,
    UsersPage,
};
use super::DigicertConnector;
use crate::connector::kit::idempotency::Holder;
use crate::connector::kit::AccountId;
use crate::connector::kit::Reads;
use crate::connector::mapping::first_id;
use crate::connector::paging::{OffsetPager, PageInfo};
use crate::connector::{ConnectorError, PageStream};
use crate::model::{AccountRecord, EntitlementRecord, GrantRecord};

/// Where the entitlement stream is.
enum EntitlementState {
    Containers,
    Roles {
        containers: VecDeque<String>,
        seen: HashSet<String>,
    },
}

#[async_trait]
impl Reads for DigicertConnector {
    /// One cheap read with the key: the first user.
    async fn probe(&self) -> Result<(), ConnectorError> {
        let url = self.http.url(
            &["user"],
            &[("offset", "0".to_string()), ("limit", "1".to_string())],
        )?;
        let _: UsersPage = self.http.get_json(url).await?;
        Ok(())
    }

    /// Every account: `GET /user`, one stream item per page.
    fn account_pages(&self) -> PageStream<'_, AccountRecord> {
        self.pages(|target, users| users.iter().map(|user| map_user(target, user)).collect())
    }

    /// Every entitlement: `GET /container` (type `container`), then `GET
    /// /container/{id}/role` for each top-level container, roles de-duplicated by id.
    fn entitlement_pages(&self) -> PageStream<'_, EntitlementRecord> {
        let target = self.core.target();
        futures::stream::try_unfold(
            Some(EntitlementState::Containers),
            move |state| async move {
                match state {
                    None => Ok(None),
                    Some(EntitlementState::Containers) => {
                        let url = self.http.url(&["container"], &[])?;
                        let body: ContainersBody = self.http.get_json(url).await?;
                        let records = body
                            .containers
                            .iter()
                            .map(|container| map_container(target, container))
                            .collect::<Result<Vec<_>, _>>()?;
                        let top_level = records
                            .iter()
                            .filter(|record| is_top_level(&record.attributes))
                            .map(|record| record.id.clone())
                            .collect();
                        let next = EntitlementState::Roles {
                            containers: top_level,
                            seen: HashSet::new(),
                        };
                        Ok(Some((records, Some(next))))
                    }
                    Some(EntitlementState::Roles {
                        mut containers,
                        mut seen,
                    }) => {
                        while let Some(container_id) = containers.pop_front() {
                            let roles = self.container_roles(&container_id).await?;
                            let new: Vec<EntitlementRecord> = map_roles(target, &roles)?
                                .into_iter()
                                .filter(|role| seen.insert(role.id.clone()))
                                .collect();
                            if !new.is_empty() {
                                return Ok(Some((
                                    new,
                                    Some(EntitlementState::Roles { containers, seen }),
                                )));
                            }
                        }
                        Ok(None)
                    }
                }
            },
        )
        .boxed()
    }

    /// Every grant: the user pages again; per user one `role` grant per access role and one
    /// `container` grant.
    fn grant_pages(&self) -> PageStream<'_, GrantRecord> {
        self.pages(|target, users| {
            let mut grants = Vec::new();
            for user in users {
                grants.extend(map_user_grants(target, user)?);
            }
            Ok(grants)
        })
    }

    async fn find_account(&self, name: &str) -> Result<Option<AccountRecord>, ConnectorError> {
        match self.find_user(name).await? {
            Some(user) => Ok(Some(map_user(self.core.target(), &user)?)),
            None => Ok(None),
        }
    }
}

impl DigicertConnector {
    /// `GET /user/{id}`: the user object.
    pub(super) async fn user(
        &self,
        account: AccountId<'_>,
    ) -> Result<Map<String, Value>, ConnectorError> {
        let url = self.http.url(&["user", account.as_str()], &[])?;
        match self.http.get_json::<Value>(url).await? {
            Value::Object(user) => Ok(user),
            _ => Err(self.core.malformed(format!(
                "the response to GET /user/{account} is not a user object"
            ))),
        }
    }

    /// The user named `username` (without letter case), through `GET
    /// /user?filters[search]=…` in its exact-match form (no `%25` prefix: the users one of
    /// whose `username`, `first_name`, `last_name` or `email` equals it), paging on, and
    /// then only a user whose `username` is that name. A blank name, or one that starts with
    /// `%` (which CertCentral would read as "contains"), is no username: `None`, unasked.
    pub(super) async fn find_user(&self, username: &str) -> Result<Option<Value>, ConnectorError> {
        if username.trim().is_empty() || username.starts_with('%') {
            tracing::debug!(
                target = self.core.target(),
                name = username,
                "Not a DigiCert username; no search sent."
            );
            return Ok(None);
        }
        let filter = [("filters[search]", username.to_string())];
        let mut pager =
            OffsetPager::new(self.core.target(), "users by name", self.core.page_size());
        while let Some(users) = self.next_page(&filter, &mut pager).await? {
            let found = users.into_iter().find(|user| {
                user.get("username")
                    .and_then(Value::as_str)
                    .is_some_and(|name| name.eq_ignore_ascii_case(username))
            });
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Who holds login name `username`, for judging a duplicate create.
    pub(super) async fn holder(&self, username: &str) -> Result<Option<Holder>, ConnectorError> {
        Ok(self.find_account(username).await?.map(Holder::from))
    }

    /// The users, page by page, each page turned into records by `map` (accounts and grants
    /// both read the users). The stream ends at the first error, whether reading or mapping.
    fn pages<T: Send + 'static>(
        &self,
        map: fn(&str, &[Value]) -> Result<Vec<T>, ConnectorError>,
    ) -> PageStream<'_, T> {
        let pager = OffsetPager::new(self.core.target(), "users", self.core.page_size());
        futures::stream::try_unfold(pager, move |mut pager| async move {
            match self.next_page(&[], &mut pager).await? {
                None => Ok(None),
                Some(users) => Ok(Some((map(self.core.target(), &users)?, pager))),
            }
        })
        .boxed()
    }

    /// Fetches the page of `GET /user` (narrowed by `filter`) the pager asks for next and
    /// checks it; `None` once the listing has been read.
    async fn next_page(
        &self,
        filter: &[(&str, String)],
        pager: &mut OffsetPager,
    ) -> Result<Option<Vec<Value>>, ConnectorError> {
        let Some(request) = pager.next_request() else {
            return Ok(None);
        };
        let mut query = filter.to_vec();
        query.extend([
            ("offset", request.offset.to_string()),
            ("limit", request.limit.to_string()),
        ]);
        let url = self.http.url(&["user"], &query)?;
        let page: UsersPage = self.http.get_json(url).await?;
        let meta = page.page.unwrap_or_default();
        pager.record(PageInfo {
            items: page.users.len(),
            offset: meta.offset,
            limit: meta.limit,
            total: meta.total,
            first_key: first_id(&page.users),
        })?;
        Ok(Some(page.users))
    }

    /// `GET /container/{id}/role`.
    async fn container_roles(&self, container_id: &str) -> Result<Vec<Value>, ConnectorError> {
        let url = self.http.url(&["container", container_id, "role"], &[])?;
        let roles: RolesBody = self.http.get_json(url).await?;
        Ok(roles.access_roles)
    }
}
