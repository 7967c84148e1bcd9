//! The one place that reads the wall clock, so that time can be a parameter in tests.

use chrono::{DateTime, SecondsFormat, Utc};

/// The current time in UTC.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// `duration` after `at`, or the far future when that does not fit (a lease or lock end).
pub fn after(at: DateTime<Utc>, duration: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|duration| at.checked_add_signed(duration))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_adds_and_saturates_at_the_far_future() {
        let at = parse("2026-11-25T10:00:00Z").unwrap();
        assert_eq!(
            after(at, std::time::Duration::from_secs(30)),
            parse("2026-11-25T10:00:30Z").unwrap()
        );
        assert_eq!(
            after(at, std::time::Duration::MAX),
            DateTime::<Utc>::MAX_UTC
        );
    }
}
