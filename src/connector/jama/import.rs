//! Reading Jama: the users (accounts), the user groups (entitlements) and each group's
//! members (grants), every listing paged by `startAt`/`maxResults`; one user by name.
//!
//! Jama clamps `maxResults` at 50 silently, so the pager advances by what a page holds
//! (`meta.pageInfo.resultCount`) and stops at `totalResults`, never on a short page.

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::Value;

use super::wire::{map_group, map_members, map_user, map_user_ref, GroupRef, ListBody};
use super::JamaConnector;
use crate::connector::kit::idempotency::Holder;
use crate::connector::kit::Reads;
use crate::connector::mapping::{first_id, PageMapper};
use crate::connector::paging::{StartIndexPage, StartIndexPager};
use crate::connector::{ConnectorError, Page, PageStream};
use crate::model::{AccountRecord, EntitlementRecord, GrantRecord};

/// How many groups' members a grant read fetches at the same time.
const MEMBER_READS_AT_ONCE: usize = 4;

#[async_trait]
impl Reads for JamaConnector {
    /// One cheap read with a token: the first user.
    async fn probe(&self) -> Result<(), ConnectorError> {
        let url = self.http.url(
            &["users"],
            &[
                ("startAt", "0".to_string()),
                ("maxResults", "1".to_string()),
            ],
        )?;
        let _: ListBody = self.http.get_json(url).await?;
        Ok(())
    }

    /// Every account: `GET /users?includeInactive=true` (without it Jama hides deactivated
    /// users, and an import would take each for a deleted one), one stream item per page.
    fn account_pages(&self) -> PageStream<'_, AccountRecord> {
        self.pages(
            &["users"],
            &[("includeInactive", "true")],
            "users",
            |target, users, anomalies| {
                users
                    .iter()
                    .map(|user| map_user(target, user, anomalies))
                    .collect()
            },
        )
    }

    /// Every entitlement: `GET /usergroups` (type `usergroup`), one stream item per page.
    fn entitlement_pages(&self) -> PageStream<'_, EntitlementRecord> {
        self.pages(
            &["usergroups"],
            &[],
            "user groups",
            |target, groups, anomalies| {
                groups
                    .iter()
                    .map(|group| map_group(target, group, anomalies))
                    .collect()
            },
        )
    }

    /// Every grant: the group ids first (40–1000 of them, kept in memory), then `GET
    /// /usergroups/{id}/users` for each group, one stream item per member page. The members
    /// of [`MEMBER_READS_AT_ONCE`] groups are read at the same time (each group's pages in
    /// order), so the import is not bound by one request's round trip at a time.
    fn grant_pages(&self) -> PageStream<'_, GrantRecord> {
        futures::stream::once(self.group_refs())
            .map(move |groups| match groups {
                Ok(groups) => futures::stream::iter(groups)
                    .map(move |group| self.member_pages(group))
                    .flatten_unordered(MEMBER_READS_AT_ONCE)
                    .boxed(),
                Err(err) => futures::stream::once(async move { Err(err) }).boxed(),
            })
            .flatten()
            // The first error ends the stream, as every page stream does (the other groups'
            // reads in flight are dropped).
            .scan(false, |failed, page| {
                let item = (!*failed).then(|| {
                    *failed = page.is_err();
                    page
                });
                futures::future::ready(item)
            })
            .boxed()
    }

    async fn find_account(&self, name: &str) -> Result<Option<AccountRecord>, ConnectorError> {
        match self.find_user(name).await? {
            // A lookup, not an import: what the mapping tolerated is not counted.
            Some(user) => Ok(Some(map_user(self.core.target(), &user, &mut Vec::new())?)),
            None => Ok(None),
        }
    }
}

impl JamaConnector {
    /// The id and name of every user group (the group list is read for these only; its
    /// anomalies are counted by the entitlement read).
    async fn group_refs(&self) -> Result<Vec<GroupRef>, ConnectorError> {
        let target = self.core.target();
        let mut pager = StartIndexPager::new(target, "user groups", self.core.page_size());
        let mut groups = Vec::new();
        while let Some(page) = self.next_page(&["usergroups"], &[], &mut pager).await? {
            for value in &page {
                let group = map_group(target, value, &mut Vec::new())?;
                groups.push(GroupRef {
                    id: group.id,
                    name: group.name,
                });
            }
        }
        Ok(groups)
    }

    /// The grants of one group's members, one stream item per member page that holds any.
    fn member_pages(&self, group: GroupRef) -> PageStream<'_, GrantRecord> {
        let target = self.core.target();
        let what = format!("members of user group {}", group.id);
        let pager = StartIndexPager::new(target, &what, self.core.page_size());
        futures::stream::try_unfold((group, pager), move |(group, mut pager)| async move {
            loop {
                let path = ["usergroups", group.id.as_str(), "users"];
                let Some(users) = self.next_page(&path, &[], &mut pager).await? else {
                    return Ok(None);
                };
                let mut anomalies = Vec::new();
                let grants = map_members(target, &group, &users, &mut anomalies)?;
                if !grants.is_empty() {
                    return Ok(Some((Page::new(grants, anomalies), (group, pager))));
                }
            }
        })
        .boxed()
    }

    /// The user object named `username` (without letter case), as Jama returned it, through
    /// `GET /users?username=…&includeInactive=true`, paging on in case the filter is ignored.
    pub(super) async fn find_user(&self, username: &str) -> Result<Option<Value>, ConnectorError> {
        let filter = [
            ("username", username.to_string()),
            ("includeInactive", "true".to_string()),
        ];
        let target = self.core.target();
        let mut pager = StartIndexPager::new(target, "users by name", self.core.page_size());
        while let Some(users) = self.next_page(&["users"], &filter, &mut pager).await? {
            for value in users {
                let user = map_user_ref(target, &value)?;
                if user.username.eq_ignore_ascii_case(username) {
                    return Ok(Some(value));
                }
            }
        }
        Ok(None)
    }

    /// Who holds login name `username`, for judging a duplicate create.
    pub(super) async fn holder(&self, username: &str) -> Result<Option<Holder>, ConnectorError> {
        match self.find_user(username).await? {
            Some(value) => {
                let user = map_user_ref(self.core.target(), &value)?;
                Ok(Some(Holder {
                    id: user.id.to_string(),
                    email: user.email,
                }))
            }
            None => Ok(None),
        }
    }

    /// One paged listing as a stream of pages, each turned into records by `map`, with what
    /// it noted. The stream ends at the first error, whether reading or mapping.
    fn pages<T: Send + 'static>(
        &self,
        path: &'static [&'static str],
        filter: &'static [(&'static str, &'static str)],
        what: &'static str,
        map: PageMapper<T>,
    ) -> PageStream<'_, T> {
        let pager = StartIndexPager::new(self.core.target(), what, self.core.page_size());
        let filter: Vec<(&str, String)> = filter
            .iter()
            .map(|(key, value)| (*key, (*value).to_string()))
            .collect();
        futures::stream::try_unfold(pager, move |mut pager| {
            let filter = filter.clone();
            async move {
                match self.next_page(path, &filter, &mut pager).await? {
                    None => Ok(None),
                    Some(page) => {
                        let mut anomalies = Vec::new();
                        let records = map(self.core.target(), &page, &mut anomalies)?;
                        Ok(Some((Page::new(records, anomalies), pager)))
                    }
                }
            }
        })
        .boxed()
    }

    /// Fetches the page of listing `path` (narrowed by `filter`) the pager asks for next and
    /// checks it; `None` once the listing has been read.
    async fn next_page(
        &self,
        path: &[&str],
        filter: &[(&str, String)],
        pager: &mut StartIndexPager,
    ) -> Result<Option<Vec<Value>>, ConnectorError> {
        let Some(request) = pager.next_request() else {
            return Ok(None);
        };
        let mut query = vec![
            ("startAt", request.offset.to_string()),
            ("maxResults", request.limit.to_string()),
        ];
        query.extend(filter.iter().cloned());
        let url = self.http.url(path, &query)?;
        let body: ListBody = self.http.get_json(url.clone()).await?;
        let data = body.data.ok_or_else(|| {
            self.core
                .malformed(format!("the response to {} has no data list", url.path()))
        })?;
        let info = body
            .meta
            .and_then(|meta| meta.page_info)
            .unwrap_or_default();
        pager.record(StartIndexPage {
            items: data.len(),
            start_index: info.start_index,
            result_count: info.result_count,
            total_results: info.total_results,
            first_key: first_id(&data),
        })?;
        Ok(Some(data))
    }
}
