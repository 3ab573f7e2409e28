//! Durations as operators write them (`500ms`, `30s`, `2h`, `1d`) in flags, inventories, plans and
//! journals: parsed in one place, and capped, so that no deadline computed from one can overflow
//! (an `Instant` plus `9000y` panics) and a typo like `2000h` is refused instead of waited for.

use std::time::Duration;

/// The longest duration pgha accepts anywhere: a week, beyond the longest restore a runbook waits
/// for (hours, in the seeds).
pub const MAX: Duration = Duration::from_hours(7 * 24);

/// Parses a human duration, refusing zero-or-more-than-[`MAX`] nonsense with a reason that names
/// the text (the caller adds the flag or key).
pub fn parse(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|error| format!("{text:?} is not a duration like 500ms, 30s or 2h: {error}"))?;
    if duration > MAX {
        return Err(format!(
            "{text:?} is longer than {}, the longest duration pgha accepts",
            humantime::format_duration(MAX)
        ));
    }
    Ok(duration)
}

/// As text in plans and journals (`"30s"`, `"2h"`): readable in a change request.
pub mod text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `Option<Duration>` as text, `null` when absent.
pub mod optional_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` hands us a reference to the field
    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => serializer.collect_str(&humantime::format_duration(*duration)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| super::parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_within_a_week() {
        assert_eq!(parse("2h"), Ok(Duration::from_hours(2)));
        assert_eq!(parse("7d"), Ok(MAX));
        for huge in ["9000y", "8d", "18446744073709551615s", "169h"] {
            let error = parse(huge).unwrap_err();
            assert!(
                error.contains("longer than 7days") || error.contains("not a duration"),
                "{huge}: {error}"
            );
        }
        assert!(
            parse("soon")
                .unwrap_err()
                .starts_with("\"soon\" is not a duration")
        );
    }
}
