//! Go-style durations (`90s`, `1h30m`, `1.5h`, `500ms`), the format Flux and the incumbent use
//! in annotations and in `spec.sync.interval`.

use std::time::Duration;

/// The schema pattern for a duration field, the same as the incumbent's.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: expected a sequence like 30s, 10m, 1h30m or 500ms")]
pub struct InvalidDuration {
    pub input: String,
}

/// Parses a Go-style duration with the units `ms`, `s`, `m` and `h`.
pub fn parse(input: &str) -> Result<Duration, InvalidDuration> {
    let invalid = || InvalidDuration {
        input: input.to_string(),
    };
    if input.is_empty() {
        return Err(invalid());
    }
    let mut total_ms = 0f64;
    let mut rest = input;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let (unit_ms, unit_len) = if tail.starts_with("ms") {
            (1.0, 2)
        } else if tail.starts_with('s') {
            (1_000.0, 1)
        } else if tail.starts_with('m') {
            (60_000.0, 1)
        } else if tail.starts_with('h') {
            (3_600_000.0, 1)
        } else {
            return Err(invalid());
        };
        total_ms += value * unit_ms;
        rest = &tail[unit_len..];
    }
    Ok(Duration::from_millis(total_ms.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2m30s100ms"), Ok(Duration::from_millis(150_100)));
    }

    #[test]
    fn rejects_what_the_schema_pattern_rejects() {
        for bad in ["", "10", "m", "10d", "1h-5m", "ten minutes", "1..5h"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
