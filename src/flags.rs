//! Values as operators write them on the command line — durations, sizes, times, names —
//! parsed and validated for clap's value parsers, so that a bad value is a usage error (exit 2)
//! before anything runs. `cli` and every runbook's own parameters use them.

use std::time::Duration;

/// `2s`, `30m`, `6h`: at most a week (see `duration`).
pub fn duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text)
}

/// `1MiB`, `512kB`, `1048576`: sizes as operators write them (KiB/MiB/GiB are 1024-based,
/// kB/MB/GB 1000-based, a bare number is bytes).
pub fn bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 1MiB or 500kB"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1000,
        "KiB" => 1024,
        "MB" => 1000 * 1000,
        "MiB" => 1024 * 1024,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "{other:?} is not a unit (B, kB, KiB, MB, MiB, GB, GiB)"
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A time for Patroni to act at: RFC 3339 with a zone (Patroni refuses naive times), in the
/// future.
pub fn future_time(text: &str) -> Result<String, String> {
    let at: jiff::Timestamp = text.parse().map_err(|error| {
        format!(
            "{text:?} is not an RFC 3339 time with a zone, like 2026-11-24T02:00:00+00:00 ({error})"
        )
    })?;
    if at <= jiff::Timestamp::now() {
        return Err(format!("{text:?} is in the past"));
    }
    Ok(at.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string())
}

/// A Patroni release: `4.1.5`.
pub fn version(text: &str) -> Result<crate::patroni::Version, String> {
    text.parse()
}

/// A WAL position as PostgreSQL writes it (`0/7A000028`), kept in that spelling.
pub fn wal_position(text: &str) -> Result<String, String> {
    text.parse::<crate::patroni::Lsn>()
        .map(|position| position.to_string())
}

/// A member, cluster or run name: the safe alphabet (`names::check_name`).
pub fn name(text: &str) -> Result<String, String> {
    crate::names::check_name(text).map(|()| text.to_string())
}

/// When a command was asked for (`20261203-041500`), naming the copies it keeps: planners read
/// no clock, so the time is taken with the flags.
pub fn request_label() -> String {
    jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_operators_write_them() {
        assert_eq!(bytes("1MiB"), Ok(1024 * 1024));
        assert_eq!(bytes("500kB"), Ok(500_000));
        assert_eq!(bytes("42"), Ok(42));
        assert!(bytes("1 PB").is_err());
        assert!(bytes("99999999999999999999GiB").is_err());
    }

    #[test]
    fn names_keep_to_the_safe_alphabet() {
        assert_eq!(name("node3"), Ok("node3".into()));
        for hostile in ["-rf", "a b", "$(id)", ".hidden", ""] {
            assert!(name(hostile).is_err(), "{hostile:?}");
        }
    }
}
