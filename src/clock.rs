//! The one place that reads the wall clock, so that time can be a parameter in tests.

use chrono::{DateTime, SecondsFormat, Utc};

/// The current time in UTC.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Formats a timestamp as RFC 3339 UTC with millisecond precision (`2026-11-25T10:00:00.000Z`).
///
/// The fixed width makes stored timestamps sort correctly as text.
pub fn format(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses a timestamp written by [`format()`] (or any RFC 3339 string).
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|ts| ts.with_timezone(&Utc))
}
