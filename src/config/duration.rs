//! Durations written as strings in the config file (`"30s"`, `"5m"`, `"1h 30m"`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration read from a string such as `"30s"` or `"5m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    /// A whole number of seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// A whole number of milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl std::str::FromStr for ConfigDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(text.trim())
            .map(ConfigDuration)
            .map_err(|err| {
                format!("`{text}` is not a duration ({err}); write e.g. \"30s\", \"5m\", \"1h\"")
            })
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_spellings() {
        assert_eq!(
            "30s".parse::<ConfigDuration>().unwrap().get(),
            Duration::from_secs(30)
        );
        assert_eq!(
            "5m".parse::<ConfigDuration>().unwrap().get(),
            Duration::from_secs(300)
        );
        assert_eq!(
            "1h 30m".parse::<ConfigDuration>().unwrap().get(),
            Duration::from_secs(5400)
        );
    }

    #[test]
    fn rejects_bare_numbers_with_a_hint() {
        let err = "30".parse::<ConfigDuration>().unwrap_err();
        assert!(err.contains("\"30s\""), "{err}");
    }
}
