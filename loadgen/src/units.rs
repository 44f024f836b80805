//! Command-line value types: durations (`60s`, `500ms`, `2m`), request rates, inclusive
//! integer ranges (`1..20`), fractions (`0.01`, `1%`) and wall-clock times (RFC 3339 or unix
//! seconds).
//!
//! Each `parse_*` function is a clap `value_parser`: it returns a message, and clap names
//! the flag in front of it. Parsing is O(length of the input).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Parses a duration written as a number with an optional unit: `ms`, `s` (the default),
/// `m` or `h`. Fractions are allowed (`1.5s`); the result must be finite and non-negative.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 500ms, 30s, 2m or 1h"))?;
    let seconds_per_unit = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown unit {other:?} in {text:?}; use ms, s, m or h")),
    };
    let seconds = value * seconds_per_unit;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{text:?} must be a finite, non-negative duration"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("{text:?}: {error}"))
}

/// Parses a request rate in requests per second: a positive, finite number (fractions
/// allowed, `0.5` is one request every two seconds).
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 =
        text.trim().parse().map_err(|_| format!("{text:?} is not a number of requests per second"))?;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(format!("{text:?} must be a positive, finite rate"));
    }
    Ok(rate)
}

/// Parses a fraction written as `0.05` or `5%`; it must lie in `[0, 1]`.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix('%') {
        Some(percent) => (percent, 0.01),
        None => (text, 1.0),
    };
    let value: f64 =
        number.trim().parse().map_err(|_| format!("{text:?} is not a fraction; write e.g. 0.01 or 1%"))?;
    let fraction = value * scale;
    if !(0.0..=1.0).contains(&fraction) {
        return Err(format!("{text:?} must lie between 0 and 1 (0% and 100%)"));
    }
    Ok(fraction)
}

/// Parses a wall-clock time: RFC 3339 (`2026-12-02T10:00:00Z`, `2026-12-02T11:00:00.250+01:00`;
/// a space or `t` may stand for the `T`, `z` for the `Z`) or seconds since the unix epoch
/// (`1796205600`, fractions allowed: `1796205600.5`). Times before 1970 are refused.
pub fn parse_wall_clock(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    let refused =
        || format!("{text:?} is not a time; write RFC 3339 (e.g. 2026-12-02T10:00:00Z) or unix seconds");
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit() || byte == b'.') {
        let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
        let seconds: u64 = seconds.parse().map_err(|_| refused())?;
        let nanos = parse_fraction_nanos(fraction).ok_or_else(refused)?;
        return UNIX_EPOCH.checked_add(Duration::new(seconds, nanos)).ok_or_else(refused);
    }
    parse_rfc3339(text).ok_or_else(refused)
}

/// Nanoseconds of a decimal fraction's digits (`"25"` is 0.25 s); digits past the ninth are
/// dropped. `None` unless every character is a digit.
fn parse_fraction_nanos(digits: &str) -> Option<u32> {
    if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let kept = &digits[..digits.len().min(9)];
    let value: u32 = if kept.is_empty() { 0 } else { kept.parse().ok()? };
    Some(value * 10u32.pow(9 - kept.len() as u32))
}

fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    let number = |range| number_in(text, range);
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if year < 1970 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0;
    if let Some(after_point) = rest.strip_prefix('.') {
        let digits = after_point.find(|c: char| !c.is_ascii_digit()).unwrap_or(after_point.len());
        if digits == 0 {
            return None;
        }
        nanos = parse_fraction_nanos(&after_point[..digits])?;
        rest = &after_point[digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let (hours, minutes) = (number_in(rest, 1..3)?, number_in(rest, 4..6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    UNIX_EPOCH.checked_add(Duration::new(u64::try_from(seconds).ok()?, nanos))
}

fn number_in(text: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = text.get(range)?;
    if part.bytes().all(|byte| byte.is_ascii_digit()) { part.parse().ok() } else { None }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `time` as RFC 3339 in UTC with milliseconds (`2026-12-02T10:00:00.000Z`); times before
/// 1970 show as the epoch.
pub fn format_wall_clock(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs() as i64;
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // civil_from_days, the inverse of days_from_civil.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// An inclusive range of counts, written `N` (exactly N), `A..B` or `A..=B` (both mean A to B
/// inclusive). Values are drawn uniformly from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntRange {
    /// The smallest value (inclusive).
    pub min: u64,
    /// The largest value (inclusive).
    pub max: u64,
}

impl IntRange {
    /// The largest bound accepted: ranges describe counts and string lengths, and a bound
    /// this large already means megabytes per request.
    pub const LIMIT: u64 = 1 << 20;

    /// A range holding exactly one value.
    pub const fn exactly(value: u64) -> Self {
        Self { min: value, max: value }
    }

    /// The range `min..=max`.
    pub const fn inclusive(min: u64, max: u64) -> Self {
        Self { min, max }
    }
}

impl FromStr for IntRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parse_bound = |bound: &str| {
            bound
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{text:?} is not a count or a range; write e.g. 5 or 1..20"))
        };
        let range = match text.split_once("..") {
            None => Self::exactly(parse_bound(text)?),
            Some((low, high)) => {
                let high = high.strip_prefix('=').unwrap_or(high);
                Self::inclusive(parse_bound(low)?, parse_bound(high)?)
            }
        };
        if range.min > range.max {
            return Err(format!("{text:?} is empty: its start is above its end"));
        }
        if range.max > Self::LIMIT {
            return Err(format!("{text:?} exceeds the limit of {}", Self::LIMIT));
        }
        Ok(range)
    }
}

impl fmt::Display for IntRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..={}", self.min, self.max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_every_unit_and_default_to_seconds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn durations_reject_unknown_units_negative_and_garbage() {
        assert!(parse_duration("10 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn rates_must_be_positive_and_finite_but_may_be_fractional() {
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert_eq!(parse_rate("2000"), Ok(2000.0));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-3").is_err());
        assert!(parse_rate("inf").is_err());
        assert!(parse_rate("NaN").is_err());
    }

    #[test]
    fn fractions_accept_plain_and_percent_forms_within_zero_and_one() {
        assert_eq!(parse_fraction("0.25"), Ok(0.25));
        assert_eq!(parse_fraction("5%"), Ok(0.05));
        assert!(parse_fraction("150%").is_err());
        assert!(parse_fraction("-0.1").is_err());
    }

    #[test]
    fn ranges_are_inclusive_whichever_way_they_are_written() {
        assert_eq!("1..20".parse(), Ok(IntRange::inclusive(1, 20)));
        assert_eq!("1..=20".parse(), Ok(IntRange::inclusive(1, 20)));
        assert_eq!("7".parse(), Ok(IntRange::exactly(7)));
        assert_eq!(" 0 .. 4 ".parse(), Ok(IntRange::inclusive(0, 4)));
    }

    #[test]
    fn ranges_reject_reversed_oversized_and_malformed_input() {
        assert!("5..1".parse::<IntRange>().unwrap_err().contains("empty"));
        assert!("0..99999999".parse::<IntRange>().unwrap_err().contains("limit"));
        assert!("a..b".parse::<IntRange>().is_err());
        assert!("1..2..3".parse::<IntRange>().is_err());
    }

    #[test]
    fn wall_clock_times_read_rfc3339_in_any_offset_and_unix_seconds() {
        let at = |seconds: u64, nanos: u32| UNIX_EPOCH + Duration::new(seconds, nanos);
        assert_eq!(parse_wall_clock("1970-01-01T00:00:00Z"), Ok(at(0, 0)));
        assert_eq!(parse_wall_clock("2026-12-02T10:00:00Z"), Ok(at(1_796_205_600, 0)));
        assert_eq!(parse_wall_clock("2026-12-02t11:30:00.25+01:30"), Ok(at(1_796_205_600, 250_000_000)));
        assert_eq!(parse_wall_clock("2026-12-02 05:00:00-05:00"), Ok(at(1_796_205_600, 0)));
        assert_eq!(parse_wall_clock("2024-02-29T00:00:00z"), Ok(at(1_709_164_800, 0)));
        assert_eq!(parse_wall_clock("1796205600"), Ok(at(1_796_205_600, 0)));
        assert_eq!(parse_wall_clock(" 1796205600.5 "), Ok(at(1_796_205_600, 500_000_000)));
        assert_eq!(format_wall_clock(at(1_796_205_600, 250_000_000)), "2026-12-02T10:00:00.250Z");
        assert_eq!(format_wall_clock(at(1_709_164_800, 0)), "2024-02-29T00:00:00.000Z");
    }

    #[test]
    fn wall_clock_times_refuse_impossible_dates_and_garbage() {
        for text in [
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-02T24:00:00Z",
            "2026-12-02T10:00:00",
            "2026-12-02T10:00:00+0100",
            "2026-12-02T10:00:00.Z",
            "1969-12-31T23:59:59Z",
            "tomorrow",
            "",
            "1.2.3",
        ] {
            let error = parse_wall_clock(text).unwrap_err();
            assert!(error.contains("RFC 3339"), "{text:?}: {error}");
        }
    }
}
