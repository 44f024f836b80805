//! Command-line value types: durations (`60s`, `500ms`, `2m`), request rates, inclusive
//! integer ranges (`1..20`) and fractions (`0.01`, `1%`).
//!
//! Each `parse_*` function is a clap `value_parser`: it returns a message, and clap names
//! the flag in front of it. Parsing is O(length of the input).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

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

/// An inclusive range of counts, written `N` (exactly N), `A..B` or `A..=B` (both mean A to B
/// inclusive). Values are drawn uniformly from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}
