//! Pagination guards shared by the adapters.
//!
//! [`OffsetPager`] drives offset/limit paging: it says which page to ask for next, and checks
//! each page the target returns before the adapter uses it. It advances by what the page
//! actually held (a target may cap the page size silently), stops at `total` when the target
//! gives one or else on a short page, and fails with a clear `Permanent` error rather than
//! loop or return a skewed snapshot when a page is inconsistent.
//!
//! [`StartIndexPager`] does the same for start-index paging with a page envelope (Jama:
//! `startAt` / `maxResults`, answered with `meta.pageInfo {startIndex, resultCount,
//! totalResults}`). It never stops on a short page: a server that clamps `maxResults`
//! silently (Jama serves at most 50) sends short pages all along, so the read advances by
//! `resultCount` and ends at `totalResults`, or on an empty page when no total is given.

use super::ConnectorError;

/// The most pages one read may take before it is judged endless.
pub const DEFAULT_MAX_PAGES: u32 = 100_000;

/// What a target said about one page of an offset/limit listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageInfo {
    /// How many records the page held.
    pub items: usize,
    /// The offset the target echoed, if it echoes one.
    pub offset: Option<u64>,
    /// The limit the target echoed (it may have clamped ours), if it echoes one.
    pub limit: Option<u64>,
    /// The size of the whole listing, if the target says.
    pub total: Option<u64>,
    /// A key of the page's first record (e.g. its id). The same key opening two pages in a
    /// row means the target returned the same page again (it ignores the offset).
    pub first_key: Option<String>,
}

/// The next page to request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Records to skip.
    pub offset: u64,
    /// Records to ask for.
    pub limit: u32,
}

/// Drives one offset/limit read and guards it against inconsistent pages.
///
/// Use: while [`next_request`](Self::next_request) gives a page, fetch it and pass what the
/// target said to [`record`](Self::record) before using the records.
#[derive(Debug, Clone)]
pub struct OffsetPager {
    target: String,
    what: String,
    limit: u32,
    next_offset: u64,
    total: Option<u64>,
    last_first_key: Option<String>,
    pages: u32,
    max_pages: u32,
    done: bool,
}

impl OffsetPager {
    /// A pager over the listing `what` (e.g. `"users"`, used in messages) of `target`, asking
    /// for `limit` records per page (at least 1).
    pub fn new(target: &str, what: &str, limit: u32) -> Self {
        Self {
            target: target.to_string(),
            what: what.to_string(),
            limit: limit.max(1),
            next_offset: 0,
            total: None,
            last_first_key: None,
            pages: 0,
            max_pages: DEFAULT_MAX_PAGES,
            done: false,
        }
    }

    /// Sets the page-count ceiling (default [`DEFAULT_MAX_PAGES`]).
    pub fn with_max_pages(mut self, max_pages: u32) -> Self {
        self.max_pages = max_pages.max(1);
        self
    }

    /// The page to request next, or `None` when the listing has been read.
    pub fn next_request(&self) -> Option<PageRequest> {
        (!self.done).then_some(PageRequest {
            offset: self.next_offset,
            limit: self.limit,
        })
    }

    /// Whether the listing has been read to the end.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Pages accepted so far.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// Checks the page just fetched for [`next_request`](Self::next_request) and advances.
    /// An `Err` means the read cannot be trusted and must stop.
    pub fn record(&mut self, page: PageInfo) -> Result<(), ConnectorError> {
        let first_key = page.first_key.clone();
        if self.done {
            return Err(self.error("a page was read after the listing ended".to_string()));
        }
        let offset = self.next_offset;
        if self.pages >= self.max_pages {
            return Err(self.error(format!(
                "more than {} pages at offset {offset}: the paging does not end",
                self.max_pages
            )));
        }
        if let Some(echoed) = page.offset {
            if echoed != offset {
                return Err(self.error(format!(
                    "asked for offset {offset} but the target returned offset {echoed}"
                )));
            }
        }
        // The server may clamp the limit: a page is short relative to what it will send.
        let effective_limit = match page.limit {
            Some(echoed) if echoed > 0 => echoed.min(u64::from(self.limit)),
            _ => u64::from(self.limit),
        };
        let items = u64::try_from(page.items).unwrap_or(u64::MAX);
        if items > effective_limit {
            return Err(self.error(format!(
                "the page at offset {offset} held {items} records, more than its limit \
                 {effective_limit}"
            )));
        }
        if let (Some(before), Some(now)) = (self.total, page.total) {
            if before != now {
                return Err(self.error(format!(
                    "the total changed from {before} to {now} during the read (the target \
                     changed mid-read, so records may have shifted); run the import again"
                )));
            }
        }
        if let (Some(before), Some(now)) = (&self.last_first_key, &first_key) {
            if before == now && items > 0 {
                return Err(self.error(format!(
                    "the page at offset {offset} starts with the same record ({now}) as the \
                     previous page: the target ignores the offset"
                )));
            }
        }
        let total = self.total.or(page.total);
        let next_offset = offset.saturating_add(items);
        if let Some(total) = total {
            if items == 0 && offset < total {
                return Err(self.error(format!(
                    "empty page at offset {offset} before the total {total} was reached"
                )));
            }
            if next_offset > total {
                return Err(self.error(format!(
                    "the page at offset {offset} held {items} records, past the total {total}"
                )));
            }
        }
        self.pages = self.pages.saturating_add(1);
        self.total = total;
        self.next_offset = next_offset;
        self.last_first_key = first_key;
        self.done = match total {
            Some(total) => next_offset >= total,
            None => items < effective_limit,
        };
        Ok(())
    }

    fn error(&self, message: String) -> ConnectorError {
        ConnectorError::Permanent {
            target: self.target.clone(),
            status: None,
            message: format!("inconsistent paging of {}: {message}", self.what),
        }
    }
}

/// What a target said about one page of a start-index listing (`meta.pageInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartIndexPage {
    /// How many records the page held (the length of `data`).
    pub items: usize,
    /// The `startIndex` the target echoed, if it did.
    pub start_index: Option<u64>,
    /// The `resultCount` the target reported, if it did.
    pub result_count: Option<u64>,
    /// The `totalResults` the target reported, if it did.
    pub total_results: Option<u64>,
    /// A key of the page's first record (e.g. its id), to catch a target that ignores
    /// `startAt` and echoes nothing.
    pub first_key: Option<String>,
}

/// Drives one start-index read (`startAt` / `maxResults`) and guards it.
///
/// It asks for `max_results` records per page, advances `startAt` by the page's
/// `resultCount` (never by the size asked for), and ends when `startAt >= totalResults`, or
/// on an empty page when the target gives no total. It fails (class `Permanent`) on an
/// echoed `startIndex` other than the one asked for, a `resultCount` that differs from the
/// records on the page, a page larger than asked, a `totalResults` that changes mid-read, an
/// empty page before the total, a page that starts with the same record as the one before,
/// and more pages than the ceiling.
///
/// Use: while [`next_request`](Self::next_request) gives a page (`offset` is `startAt`,
/// `limit` is `maxResults`), fetch it and pass what the target said to
/// [`record`](Self::record) before using the records.
#[derive(Debug, Clone)]
pub struct StartIndexPager {
    target: String,
    what: String,
    max_results: u32,
    start_at: u64,
    total: Option<u64>,
    last_first_key: Option<String>,
    pages: u32,
    max_pages: u32,
    done: bool,
}

impl StartIndexPager {
    /// A pager over the listing `what` (e.g. `"users"`, used in messages) of `target`, asking
    /// for `max_results` records per page (at least 1).
    pub fn new(target: &str, what: &str, max_results: u32) -> Self {
        Self {
            target: target.to_string(),
            what: what.to_string(),
            max_results: max_results.max(1),
            start_at: 0,
            total: None,
            last_first_key: None,
            pages: 0,
            max_pages: DEFAULT_MAX_PAGES,
            done: false,
        }
    }

    /// Sets the page-count ceiling (default [`DEFAULT_MAX_PAGES`]).
    pub fn with_max_pages(mut self, max_pages: u32) -> Self {
        self.max_pages = max_pages.max(1);
        self
    }

    /// The page to request next (`offset` = `startAt`, `limit` = `maxResults`), or `None`
    /// when the listing has been read.
    pub fn next_request(&self) -> Option<PageRequest> {
        (!self.done).then_some(PageRequest {
            offset: self.start_at,
            limit: self.max_results,
        })
    }

    /// Whether the listing has been read to the end.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Pages accepted so far.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// Checks the page just fetched for [`next_request`](Self::next_request) and advances.
    /// An `Err` means the read cannot be trusted and must stop.
    pub fn record(&mut self, page: StartIndexPage) -> Result<(), ConnectorError> {
        if self.done {
            return Err(self.error("a page was read after the listing ended".to_string()));
        }
        let start_at = self.start_at;
        if self.pages >= self.max_pages {
            return Err(self.error(format!(
                "more than {} pages at startAt {start_at}: the paging does not end",
                self.max_pages
            )));
        }
        if let Some(echoed) = page.start_index {
            if echoed != start_at {
                return Err(self.error(format!(
                    "asked for startAt {start_at} but the target returned startIndex {echoed}"
                )));
            }
        }
        let items = u64::try_from(page.items).unwrap_or(u64::MAX);
        if let Some(count) = page.result_count {
            if count != items {
                return Err(self.error(format!(
                    "the page at startAt {start_at} says resultCount {count} but holds {items} \
                     records"
                )));
            }
        }
        if items > u64::from(self.max_results) {
            return Err(self.error(format!(
                "the page at startAt {start_at} held {items} records, more than the \
                 maxResults {} asked for",
                self.max_results
            )));
        }
        if let (Some(before), Some(now)) = (self.total, page.total_results) {
            if before != now {
                return Err(self.error(format!(
                    "totalResults changed from {before} to {now} during the read (the target \
                     changed mid-read, so records may have shifted); run the import again"
                )));
            }
        }
        if let (Some(before), Some(now)) = (&self.last_first_key, &page.first_key) {
            if before == now && items > 0 {
                return Err(self.error(format!(
                    "the page at startAt {start_at} starts with the same record ({now}) as the \
                     previous page: the target ignores startAt"
                )));
            }
        }
        let total = self.total.or(page.total_results);
        let next = start_at.saturating_add(items);
        if let Some(total) = total {
            if items == 0 && start_at < total {
                return Err(self.error(format!(
                    "empty page at startAt {start_at} before totalResults {total} was reached"
                )));
            }
            if next > total {
                return Err(self.error(format!(
                    "the page at startAt {start_at} held {items} records, past totalResults \
                     {total}"
                )));
            }
        }
        self.pages = self.pages.saturating_add(1);
        self.total = total;
        self.start_at = next;
        self.last_first_key = page.first_key;
        self.done = match total {
            Some(total) => next >= total,
            None => items == 0,
        };
        Ok(())
    }

    fn error(&self, message: String) -> ConnectorError {
        ConnectorError::Permanent {
            target: self.target.clone(),
            status: None,
            message: format!("inconsistent paging of {}: {message}", self.what),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::ErrorClass;

    /// One table row: name, limit, pages, offsets requested, done.
    type Listing = (&'static str, u32, Vec<PageInfo>, Vec<u64>, bool);

    fn page(items: usize, offset: Option<u64>, limit: Option<u64>, total: Option<u64>) -> PageInfo {
        PageInfo {
            items,
            offset,
            limit,
            total,
            first_key: None,
        }
    }

    fn keyed(items: usize, first_key: &str) -> PageInfo {
        PageInfo {
            items,
            first_key: Some(first_key.to_string()),
            ..PageInfo::default()
        }
    }

    /// Feeds pages in order; returns the offsets requested and the outcome.
    fn run(limit: u32, pages: &[PageInfo]) -> (Vec<u64>, Result<bool, String>) {
        let mut pager = OffsetPager::new("t", "users", limit).with_max_pages(10);
        let mut offsets = Vec::new();
        for info in pages {
            let Some(request) = pager.next_request() else {
                return (
                    offsets,
                    Err("asked for no more pages but pages remain".into()),
                );
            };
            offsets.push(request.offset);
            if let Err(err) = pager.record(info.clone()) {
                assert_eq!(err.class(), ErrorClass::Permanent);
                return (offsets, Err(err.to_string()));
            }
        }
        (offsets, Ok(pager.is_done()))
    }

    #[test]
    fn consistent_listings_end_where_they_should() {
        // (name, limit, pages, offsets requested, done)
        let cases: Vec<Listing> = vec![
            (
                "total reached exactly",
                10,
                vec![
                    page(10, Some(0), Some(10), Some(25)),
                    page(10, Some(10), Some(10), Some(25)),
                    page(5, Some(20), Some(10), Some(25)),
                ],
                vec![0, 10, 20],
                true,
            ),
            (
                "full last page at the total",
                10,
                vec![
                    page(10, Some(0), None, Some(20)),
                    page(10, Some(10), None, Some(20)),
                ],
                vec![0, 10],
                true,
            ),
            (
                "empty listing with total",
                10,
                vec![page(0, Some(0), Some(10), Some(0))],
                vec![0],
                true,
            ),
            (
                "empty listing without total",
                10,
                vec![page(0, None, None, None)],
                vec![0],
                true,
            ),
            (
                "short page without total",
                10,
                vec![page(10, None, None, None), page(3, None, None, None)],
                vec![0, 10],
                true,
            ),
            (
                "full page without total needs one more",
                10,
                vec![page(10, None, None, None), page(0, None, None, None)],
                vec![0, 10],
                true,
            ),
            (
                "server clamps the limit and echoes it",
                100,
                vec![
                    page(40, Some(0), Some(40), None),
                    page(40, Some(40), Some(40), None),
                    page(39, Some(80), Some(40), None),
                ],
                vec![0, 40, 80],
                true,
            ),
            (
                "server caps silently, total drives",
                100,
                vec![
                    page(40, None, None, Some(90)),
                    page(40, None, None, Some(90)),
                    page(10, None, None, Some(90)),
                ],
                vec![0, 40, 80],
                true,
            ),
            (
                "keys that move on are fine",
                10,
                vec![keyed(10, "1"), keyed(10, "11"), keyed(2, "21")],
                vec![0, 10, 20],
                true,
            ),
            (
                "not done after a full page",
                10,
                vec![page(10, Some(0), Some(10), Some(30))],
                vec![0],
                false,
            ),
        ];
        for (name, limit, pages, want_offsets, want_done) in cases {
            let (offsets, outcome) = run(limit, &pages);
            assert_eq!(offsets, want_offsets, "{name}");
            assert_eq!(outcome, Ok(want_done), "{name}");
        }
    }

    #[test]
    fn inconsistent_pages_fail_with_a_clear_message() {
        // (name, limit, pages, expected words in the error)
        let cases: Vec<(&str, u32, Vec<PageInfo>, &str)> = vec![
            (
                "echoed offset differs",
                10,
                vec![
                    page(10, Some(0), None, Some(30)),
                    page(10, Some(0), None, Some(30)),
                ],
                "asked for offset 10 but the target returned offset 0",
            ),
            (
                "more items than the limit",
                10,
                vec![page(11, Some(0), None, None)],
                "more than its limit 10",
            ),
            (
                "more items than the clamped limit",
                10,
                vec![page(6, Some(0), Some(5), None)],
                "more than its limit 5",
            ),
            (
                "empty page before the total",
                10,
                vec![
                    page(10, None, None, Some(30)),
                    page(0, None, None, Some(30)),
                ],
                "empty page at offset 10 before the total 30",
            ),
            (
                "total changes mid-read",
                10,
                vec![
                    page(10, None, None, Some(30)),
                    page(10, None, None, Some(31)),
                ],
                "total changed from 30 to 31",
            ),
            (
                "page runs past the total",
                10,
                vec![
                    page(10, None, None, Some(25)),
                    page(10, None, None, Some(25)),
                    page(10, None, None, Some(25)),
                ],
                "past the total 25",
            ),
            (
                "the same page again (offset ignored, nothing echoed)",
                10,
                vec![keyed(10, "1"), keyed(10, "1")],
                "starts with the same record (1) as the previous page",
            ),
            (
                "endless full pages hit the ceiling",
                1,
                (0..11).map(|_| page(1, None, None, None)).collect(),
                "more than 10 pages",
            ),
        ];
        for (name, limit, pages, words) in cases {
            let (_, outcome) = run(limit, &pages);
            let err = outcome.expect_err(name);
            assert!(err.contains(words), "{name}: {err}");
            assert!(
                err.contains("inconsistent paging of users"),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn a_finished_pager_asks_for_nothing_and_refuses_more() {
        let mut pager = OffsetPager::new("t", "users", 5);
        pager.record(page(2, Some(0), Some(5), Some(2))).unwrap();
        assert!(pager.is_done());
        assert_eq!(pager.next_request(), None);
        assert!(pager.record(page(0, None, None, None)).is_err());
    }

    #[test]
    fn a_zero_limit_is_raised_to_one() {
        let pager = OffsetPager::new("t", "users", 0);
        assert_eq!(
            pager.next_request(),
            Some(PageRequest {
                offset: 0,
                limit: 1
            })
        );
    }

    /// One table row: name, maxResults, pages, startAt values requested, done.
    type StartListing = (&'static str, u32, Vec<StartIndexPage>, Vec<u64>, bool);

    /// One start-index page: items, startIndex, resultCount, totalResults.
    fn jp(
        items: usize,
        start: Option<u64>,
        count: Option<u64>,
        total: Option<u64>,
    ) -> StartIndexPage {
        StartIndexPage {
            items,
            start_index: start,
            result_count: count,
            total_results: total,
            first_key: None,
        }
    }

    /// A consistent Jama page: `items` records at `start` of `total`.
    fn full(items: usize, start: u64, total: u64) -> StartIndexPage {
        jp(items, Some(start), Some(items as u64), Some(total))
    }

    /// Feeds start-index pages in order; returns the startAt values requested and the outcome.
    fn run_start(max_results: u32, pages: &[StartIndexPage]) -> (Vec<u64>, Result<bool, String>) {
        let mut pager = StartIndexPager::new("t", "users", max_results).with_max_pages(10);
        let mut starts = Vec::new();
        for info in pages {
            let Some(request) = pager.next_request() else {
                return (
                    starts,
                    Err("asked for no more pages but pages remain".into()),
                );
            };
            assert_eq!(request.limit, max_results.max(1));
            starts.push(request.offset);
            if let Err(err) = pager.record(info.clone()) {
                assert_eq!(err.class(), ErrorClass::Permanent);
                return (starts, Err(err.to_string()));
            }
        }
        (starts, Ok(pager.is_done()))
    }

    #[test]
    fn start_index_listings_end_where_they_should() {
        // (name, maxResults, pages, startAt values requested, done)
        let cases: Vec<StartListing> = vec![
            (
                "137 records by 50",
                50,
                vec![full(50, 0, 137), full(50, 50, 137), full(37, 100, 137)],
                vec![0, 50, 100],
                true,
            ),
            (
                "asking 100 of a server that clamps at 50 skips nothing",
                100,
                vec![full(50, 0, 137), full(50, 50, 137), full(37, 100, 137)],
                vec![0, 50, 100],
                true,
            ),
            (
                "a short page is not the end while the total is ahead",
                50,
                vec![full(20, 0, 60), full(20, 20, 60), full(20, 40, 60)],
                vec![0, 20, 40],
                true,
            ),
            (
                "full last page at the total",
                50,
                vec![full(50, 0, 100), full(50, 50, 100)],
                vec![0, 50],
                true,
            ),
            ("empty listing", 50, vec![full(0, 0, 0)], vec![0], true),
            (
                "no pageInfo: ends on the empty page, not the short one",
                50,
                vec![
                    jp(50, None, None, None),
                    jp(3, None, None, None),
                    jp(0, None, None, None),
                ],
                vec![0, 50, 53],
                true,
            ),
            (
                "not done while the total is ahead",
                50,
                vec![full(50, 0, 120)],
                vec![0],
                false,
            ),
            (
                "a zero page size asks for one",
                0,
                vec![full(1, 0, 2), full(1, 1, 2)],
                vec![0, 1],
                true,
            ),
        ];
        for (name, max_results, pages, want_starts, want_done) in cases {
            let (starts, outcome) = run_start(max_results, &pages);
            assert_eq!(starts, want_starts, "{name}");
            assert_eq!(outcome, Ok(want_done), "{name}");
        }
    }

    #[test]
    fn inconsistent_start_index_pages_fail_with_a_clear_message() {
        let keyed = |items: usize, key: &str| StartIndexPage {
            items,
            first_key: Some(key.to_string()),
            ..StartIndexPage::default()
        };
        // (name, maxResults, pages, expected words in the error)
        let cases: Vec<(&str, u32, Vec<StartIndexPage>, &str)> = vec![
            (
                "echoed startIndex differs",
                50,
                vec![full(50, 0, 137), full(50, 0, 137)],
                "asked for startAt 50 but the target returned startIndex 0",
            ),
            (
                "resultCount differs from the data",
                50,
                vec![jp(49, Some(0), Some(50), Some(137))],
                "says resultCount 50 but holds 49 records",
            ),
            (
                "more records than asked for",
                20,
                vec![full(21, 0, 137)],
                "more than the maxResults 20 asked for",
            ),
            (
                "totalResults changes mid-read",
                50,
                vec![full(50, 0, 137), full(50, 50, 138)],
                "totalResults changed from 137 to 138",
            ),
            (
                "empty page before the total",
                50,
                vec![full(50, 0, 137), full(0, 50, 137)],
                "empty page at startAt 50 before totalResults 137",
            ),
            (
                "a page past the total",
                50,
                vec![full(50, 0, 60), full(50, 50, 60)],
                "past totalResults 60",
            ),
            (
                "the same page again with nothing echoed",
                50,
                vec![keyed(50, "1"), keyed(50, "1")],
                "starts with the same record (1) as the previous page",
            ),
            (
                "endless pages hit the ceiling",
                1,
                (0..11).map(|_| jp(1, None, None, None)).collect(),
                "more than 10 pages",
            ),
        ];
        for (name, max_results, pages, words) in cases {
            let (_, outcome) = run_start(max_results, &pages);
            let err = outcome.expect_err(name);
            assert!(err.contains(words), "{name}: {err}");
            assert!(
                err.contains("inconsistent paging of users"),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn a_finished_start_index_pager_asks_for_nothing_and_refuses_more() {
        let mut pager = StartIndexPager::new("t", "users", 50);
        pager.record(full(2, 0, 2)).unwrap();
        assert!(pager.is_done());
        assert_eq!(pager.pages(), 1);
        assert_eq!(pager.next_request(), None);
        assert!(pager.record(full(0, 2, 2)).is_err());
    }
}
