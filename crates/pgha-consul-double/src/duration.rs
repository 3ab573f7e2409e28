//! Go durations on the wire: a clone of Go's `time.ParseDuration` and of `time.Duration.String`.
//!
//! Consul decodes every duration it receives with Go's parser, so clients send strings such as
//! `"10.0s"`, `"0.001s"` or `"1.8032591342926025s"` (Patroni builds them from Python floats). The
//! parser below follows Go's algorithm step by step, including its float arithmetic for fractions,
//! so that the double rounds exactly as Consul does. Formatting is needed where Consul renders a
//! duration back (check intervals, TTL error messages).

use std::time::Duration;

const NANOS_PER_MICROSECOND: u64 = 1_000;
const NANOS_PER_MILLISECOND: u64 = 1_000_000;
const NANOS_PER_SECOND: u64 = 1_000_000_000;
const NANOS_PER_MINUTE: u64 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: u64 = 60 * NANOS_PER_MINUTE;
/// Go accumulates durations as unsigned integers and allows up to 1<<63 before applying the sign.
const MAGNITUDE_LIMIT: u64 = 1 << 63;

/// The three error texts of Go's parser (Consul embeds them in its own messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DurationError {
    #[error("time: invalid duration \"{0}\"")]
    Invalid(String),
    #[error("time: missing unit in duration \"{0}\"")]
    MissingUnit(String),
    #[error("time: unknown unit \"{unit}\" in duration \"{input}\"")]
    UnknownUnit { unit: String, input: String },
}

/// Parses a Go duration into signed nanoseconds, exactly like `time.ParseDuration`.
pub(crate) fn parse_nanos(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut magnitude: u64 = 0;
    while !rest.is_empty() {
        let (component, remainder) = parse_component(rest, input)?;
        magnitude = magnitude
            .checked_add(component)
            .filter(|sum| *sum <= MAGNITUDE_LIMIT)
            .ok_or_else(invalid)?;
        rest = remainder;
    }
    apply_sign(magnitude, negative).ok_or_else(invalid)
}

/// Parses a Go duration that must not be negative (waits, intervals, timeouts).
pub(crate) fn parse(input: &str) -> Result<Duration, DurationError> {
    let nanos = parse_nanos(input)?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| DurationError::Invalid(input.to_owned()))
}

/// Renders a duration the way Go's `Duration.String` does: `0s`, `300ms`, `1.5µs`, `1h2m0s`.
pub(crate) fn format_nanos(nanos: i64) -> String {
    let magnitude = nanos.unsigned_abs();
    let body = if magnitude < NANOS_PER_SECOND {
        format_below_second(magnitude)
    } else {
        format_clock(magnitude)
    };
    if nanos < 0 { format!("-{body}") } else { body }
}

/// [`format_nanos`] for a `std::time::Duration` (saturating at Go's maximum).
pub(crate) fn format(duration: Duration) -> String {
    format_nanos(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX))
}

/// One `<number>[.<fraction>]<unit>` group; returns its nanoseconds and the unparsed rest.
fn parse_component<'a>(text: &'a str, input: &str) -> Result<(u64, &'a str), DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let first = text.as_bytes()[0];
    if !(first == b'.' || first.is_ascii_digit()) {
        return Err(invalid());
    }
    let (whole, after_whole) = leading_int(text).ok_or_else(invalid)?;
    let had_whole = after_whole.len() != text.len();
    let (fraction, scale, after_fraction, had_fraction) = match after_whole.strip_prefix('.') {
        Some(digits) => {
            let (fraction, scale, rest) = leading_fraction(digits);
            (fraction, scale, rest, rest.len() != digits.len())
        }
        None => (0, 1.0, after_whole, false),
    };
    if !had_whole && !had_fraction {
        return Err(invalid());
    }
    let unit_length = after_fraction
        .find(|c: char| c == '.' || c.is_ascii_digit())
        .unwrap_or(after_fraction.len());
    if unit_length == 0 {
        return Err(DurationError::MissingUnit(input.to_owned()));
    }
    let (unit, rest) = after_fraction.split_at(unit_length);
    let unit_nanos = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
        unit: unit.to_owned(),
        input: input.to_owned(),
    })?;
    let value = scale_component(whole, fraction, scale, unit_nanos).ok_or_else(invalid)?;
    Ok((value, rest))
}

/// `whole * unit + fraction * unit / scale`, with Go's overflow rules and Go's float64 rounding
/// for the fractional part ("float64 is needed to be nanosecond accurate for fractions of hours").
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn scale_component(whole: u64, fraction: u64, scale: f64, unit_nanos: u64) -> Option<u64> {
    if whole > MAGNITUDE_LIMIT / unit_nanos {
        return None;
    }
    let mut value = whole * unit_nanos;
    if fraction > 0 {
        value += (fraction as f64 * (unit_nanos as f64 / scale)) as u64;
        if value > MAGNITUDE_LIMIT {
            return None;
        }
    }
    Some(value)
}

/// Go's `leadingInt`: the leading decimal digits, failing on overflow past 1<<63.
fn leading_int(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let mut value: u64 = 0;
    for digit in text[..digits].bytes() {
        if value > MAGNITUDE_LIMIT / 10 {
            return None;
        }
        value = value * 10 + u64::from(digit - b'0');
        if value > MAGNITUDE_LIMIT {
            return None;
        }
    }
    Some((value, &text[digits..]))
}

/// Go's `leadingFraction`: digits after the point; digits that would overflow are skipped, not
/// rejected, which silently drops precision exactly as Go does.
fn leading_fraction(text: &str) -> (u64, f64, &str) {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let mut value: u64 = 0;
    let mut scale = 1.0;
    let mut overflowed = false;
    for digit in text[..digits].bytes() {
        if overflowed {
            continue;
        }
        if value > (MAGNITUDE_LIMIT - 1) / 10 {
            overflowed = true;
            continue;
        }
        let next = value * 10 + u64::from(digit - b'0');
        if next > MAGNITUDE_LIMIT {
            overflowed = true;
            continue;
        }
        value = next;
        scale *= 10.0;
    }
    (value, scale, &text[digits..])
}

fn unit_nanos(unit: &str) -> Option<u64> {
    match unit {
        "ns" => Some(1),
        // U+00B5 (micro sign) and U+03BC (Greek mu) are both accepted by Go.
        "us" | "\u{b5}s" | "\u{3bc}s" => Some(NANOS_PER_MICROSECOND),
        "ms" => Some(NANOS_PER_MILLISECOND),
        "s" => Some(NANOS_PER_SECOND),
        "m" => Some(NANOS_PER_MINUTE),
        "h" => Some(NANOS_PER_HOUR),
        _ => None,
    }
}

fn apply_sign(magnitude: u64, negative: bool) -> Option<i64> {
    if negative {
        if magnitude == MAGNITUDE_LIMIT {
            Some(i64::MIN)
        } else {
            i64::try_from(magnitude).ok().map(|value| -value)
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

fn format_below_second(nanos: u64) -> String {
    match nanos {
        0 => "0s".to_owned(),
        1..NANOS_PER_MICROSECOND => format!("{nanos}ns"),
        NANOS_PER_MICROSECOND..NANOS_PER_MILLISECOND => format!("{}\u{b5}s", decimal(nanos, 3)),
        _ => format!("{}ms", decimal(nanos, 6)),
    }
}

/// `XhYmZ.FFFs` where hours and minutes appear only when non-zero, as in Go.
fn format_clock(nanos: u64) -> String {
    let seconds = decimal(nanos % NANOS_PER_MINUTE, 9);
    let total_minutes = nanos / NANOS_PER_MINUTE;
    if total_minutes == 0 {
        return format!("{seconds}s");
    }
    let minutes = total_minutes % 60;
    let hours = total_minutes / 60;
    if hours == 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{hours}h{minutes}m{seconds}s")
    }
}

/// `value / 10^precision` with the fraction's trailing zeros (and a bare point) dropped.
fn decimal(value: u64, precision: u32) -> String {
    let divisor = 10u64.pow(precision);
    let (whole, fraction) = (value / divisor, value % divisor);
    if fraction == 0 {
        return whole.to_string();
    }
    let width = precision as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_strings_patroni_sends() {
        assert_eq!(parse_nanos("10.0s"), Ok(10_000_000_000));
        assert_eq!(parse_nanos("0.001s"), Ok(1_000_000));
        assert_eq!(parse_nanos("1.8032591342926025s"), Ok(1_803_259_134));
        assert_eq!(parse_nanos("100.0s"), Ok(100_000_000_000));
        assert_eq!(parse_nanos("15.0s"), Ok(15_000_000_000));
    }

    #[test]
    fn parses_compound_and_small_units() {
        assert_eq!(parse_nanos("1h2m"), Ok(3_720_000_000_000));
        assert_eq!(parse_nanos("300ms"), Ok(300_000_000));
        assert_eq!(parse_nanos("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_nanos("2us"), Ok(2_000));
        assert_eq!(parse_nanos("2\u{b5}s"), Ok(2_000));
        assert_eq!(parse_nanos("2\u{3bc}s"), Ok(2_000));
        assert_eq!(parse_nanos("7ns"), Ok(7));
        assert_eq!(parse_nanos(".5s"), Ok(500_000_000));
        assert_eq!(parse_nanos("5.s"), Ok(5_000_000_000));
        assert_eq!(parse_nanos("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_nanos("0"), Ok(0));
        assert_eq!(parse_nanos("+0"), Ok(0));
        assert_eq!(parse_nanos("-1.5s"), Ok(-1_500_000_000));
        assert_eq!(parse_nanos("2562047h47m16.854775807s"), Ok(i64::MAX));
        assert_eq!(parse_nanos("-2562047h47m16.854775808s"), Ok(i64::MIN));
    }

    #[test]
    fn rejects_what_go_rejects_with_go_texts() {
        let invalid = |text: &str| Err(DurationError::Invalid(text.to_owned()));
        assert_eq!(parse_nanos(""), invalid(""));
        assert_eq!(parse_nanos("-"), invalid("-"));
        assert_eq!(parse_nanos("s"), invalid("s"));
        assert_eq!(parse_nanos("."), invalid("."));
        assert_eq!(parse_nanos(".s"), invalid(".s"));
        assert_eq!(parse_nanos("3000000h"), invalid("3000000h"));
        assert_eq!(
            parse_nanos("9223372036854775808ns"),
            invalid("9223372036854775808ns")
        );
        assert_eq!(
            parse_nanos("10"),
            Err(DurationError::MissingUnit("10".to_owned()))
        );
        assert_eq!(
            parse_nanos("10x").unwrap_err().to_string(),
            "time: unknown unit \"x\" in duration \"10x\""
        );
        assert_eq!(
            parse("1.5").unwrap_err().to_string(),
            "time: missing unit in duration \"1.5\""
        );
        assert!(parse("-1s").is_err());
    }

    #[test]
    fn keeps_go_precision_for_long_fractions() {
        // More fraction digits than fit in 63 bits: Go drops the excess instead of failing.
        assert_eq!(parse_nanos("0.1234567890123456789012345s"), Ok(123_456_789));
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (999, "999ns"),
            (1_100, "1.1\u{b5}s"),
            (2_200_000, "2.2ms"),
            (300_000_000, "300ms"),
            (1_000_000, "1ms"),
            (1_000_000_000, "1s"),
            (10_000_000_000, "10s"),
            (1_500_000_000, "1.5s"),
            (100_000_000_000, "1m40s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_720_000_000_000, "1h2m0s"),
            (86_400_000_000_000, "24h0m0s"),
            (-1_500_000_000, "-1.5s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(format_nanos(nanos), text, "{nanos}ns");
        }
        assert_eq!(format(Duration::from_secs(5)), "5s");
    }

    #[test]
    fn formatting_round_trips_through_parsing() {
        for nanos in [
            1,
            1_100,
            2_200_000,
            1_803_259_134,
            100_000_000_000,
            86_400_000_000_000,
        ] {
            assert_eq!(parse_nanos(&format_nanos(nanos)), Ok(nanos));
        }
    }
}
