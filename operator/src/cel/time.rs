//! Timestamps and durations with the semantics of CEL's
//! `google.protobuf.Timestamp` / `google.protobuf.Duration` as cel-go
//! implements them (Go `time.Time` / `time.Duration` underneath).

use std::fmt;

const NANOS_PER_SEC: i64 = 1_000_000_000;
/// 0001-01-01T00:00:00Z in Unix seconds.
const MIN_UNIX_SECS: i64 = -62_135_596_800;
/// 9999-12-31T23:59:59Z in Unix seconds.
const MAX_UNIX_SECS: i64 = 253_402_300_799;

/// A point in time: Unix seconds plus nanoseconds within the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

/// A signed span of time in nanoseconds (Go `time.Duration` range).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    nanos: i64,
}

/// Broken-down civil time in some fixed UTC offset.
pub(super) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
    pub day_of_week: u32,
    pub day_of_year: u32,
}

impl Timestamp {
    /// Builds a timestamp from Unix seconds and nanos, checking CEL's range
    /// (years 0001 through 9999).
    pub fn from_unix(secs: i64, nanos: u32) -> Option<Timestamp> {
        if !(MIN_UNIX_SECS..=MAX_UNIX_SECS).contains(&secs) || nanos >= NANOS_PER_SEC as u32 {
            return None;
        }
        Some(Timestamp { secs, nanos })
    }

    pub fn unix_seconds(&self) -> i64 {
        self.secs
    }

    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    fn total_nanos(&self) -> i128 {
        self.secs as i128 * NANOS_PER_SEC as i128 + self.nanos as i128
    }

    fn from_total_nanos(n: i128) -> Option<Timestamp> {
        let secs = n.div_euclid(NANOS_PER_SEC as i128);
        let nanos = n.rem_euclid(NANOS_PER_SEC as i128) as u32;
        let secs = i64::try_from(secs).ok()?;
        Timestamp::from_unix(secs, nanos)
    }

    pub fn add(&self, d: Duration) -> Option<Timestamp> {
        Timestamp::from_total_nanos(self.total_nanos() + d.nanos as i128)
    }

    pub fn sub_duration(&self, d: Duration) -> Option<Timestamp> {
        Timestamp::from_total_nanos(self.total_nanos() - d.nanos as i128)
    }

    pub fn sub(&self, other: &Timestamp) -> Option<Duration> {
        let diff = self.total_nanos() - other.total_nanos();
        i64::try_from(diff).ok().map(Duration::from_nanos)
    }

    /// Parses an RFC 3339 timestamp the way Go's `time.Parse(time.RFC3339, s)`
    /// does: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`, upper-case `T`
    /// and `Z` only, validated calendar fields.
    pub fn parse(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        let num = |from: usize, len: usize| -> Option<u32> {
            let part = b.get(from..from + len)?;
            if !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(part).ok()?.parse().ok()
        };
        let year = num(0, 4)? as i64;
        if b.get(4) != Some(&b'-') {
            return None;
        }
        let month = num(5, 2)?;
        if b.get(7) != Some(&b'-') {
            return None;
        }
        let day = num(8, 2)?;
        if b.get(10) != Some(&b'T') {
            return None;
        }
        let hour = num(11, 2)?;
        if b.get(13) != Some(&b':') {
            return None;
        }
        let minute = num(14, 2)?;
        if b.get(16) != Some(&b':') {
            return None;
        }
        let second = num(17, 2)?;
        let mut i = 19;
        let mut nanos: u32 = 0;
        if matches!(b.get(i), Some(b'.') | Some(b',')) {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return None;
            }
            let mut digits = 0;
            for &c in &b[start..i] {
                if digits < 9 {
                    nanos = nanos * 10 + (c - b'0') as u32;
                    digits += 1;
                }
            }
            while digits < 9 {
                nanos *= 10;
                digits += 1;
            }
        }
        let offset_secs: i64 = match b.get(i) {
            Some(b'Z') => {
                i += 1;
                0
            }
            Some(&sign @ (b'+' | b'-')) => {
                let oh = num(i + 1, 2)?;
                if b.get(i + 3) != Some(&b':') {
                    return None;
                }
                let om = num(i + 4, 2)?;
                if oh > 24 || om > 60 {
                    return None;
                }
                i += 6;
                let off = (oh * 3600 + om * 60) as i64;
                if sign == b'-' { -off } else { off }
            }
            _ => return None,
        };
        if i != b.len() {
            return None;
        }
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset_secs;
        Timestamp::from_unix(secs, nanos)
    }

    /// Civil fields at the given UTC offset (seconds east of UTC).
    pub(super) fn civil(&self, offset_secs: i64) -> Civil {
        let local = self.secs + offset_secs;
        let days = local.div_euclid(86_400);
        let sod = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let day_of_week = (days + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
        let day_of_year = (days - days_from_civil(year, 1, 1)) as u32;
        Civil {
            year,
            month,
            day,
            hour: (sod / 3600) as u32,
            minute: (sod % 3600 / 60) as u32,
            second: (sod % 60) as u32,
            nanos: self.nanos,
            day_of_week,
            day_of_year,
        }
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with trailing zeros of the fraction trimmed, like Go's
    /// `time.RFC3339Nano`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.civil(0);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )?;
        if self.nanos > 0 {
            let frac = format!("{:09}", self.nanos);
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

impl Duration {
    pub fn from_nanos(nanos: i64) -> Duration {
        Duration { nanos }
    }

    pub fn nanos(&self) -> i64 {
        self.nanos
    }

    pub fn checked_add(&self, o: Duration) -> Option<Duration> {
        self.nanos.checked_add(o.nanos).map(Duration::from_nanos)
    }

    pub fn checked_sub(&self, o: Duration) -> Option<Duration> {
        self.nanos.checked_sub(o.nanos).map(Duration::from_nanos)
    }

    pub fn checked_neg(&self) -> Option<Duration> {
        self.nanos.checked_neg().map(Duration::from_nanos)
    }

    /// Seconds as a float, computed like Go's `Duration.Seconds()`.
    pub fn seconds_f64(&self) -> f64 {
        let sec = self.nanos / NANOS_PER_SEC;
        let nsec = self.nanos % NANOS_PER_SEC;
        sec as f64 + nsec as f64 / 1e9
    }

    /// Parses a Go duration string (`time.ParseDuration`): an optional sign
    /// followed by one or more decimal numbers with units
    /// `ns us µs μs ms s m h`, e.g. `1h30m`, `1.5s`, `-90m`; `0` alone is valid.
    pub fn parse(s: &str) -> Option<Duration> {
        let mut rest = s;
        let mut neg = false;
        if let Some(r) = rest.strip_prefix('-') {
            neg = true;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('+') {
            rest = r;
        }
        if rest == "0" {
            return Some(Duration { nanos: 0 });
        }
        if rest.is_empty() {
            return None;
        }
        let mut total: u64 = 0;
        while !rest.is_empty() {
            let bytes = rest.as_bytes();
            if !(bytes[0] == b'.' || bytes[0].is_ascii_digit()) {
                return None;
            }
            // integer part
            let mut i = 0;
            let mut v: u64 = 0;
            let mut overflow = false;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                match v
                    .checked_mul(10)
                    .and_then(|x| x.checked_add((bytes[i] - b'0') as u64))
                {
                    Some(x) if x <= 1 << 63 => v = x,
                    _ => overflow = true,
                }
                i += 1;
            }
            if overflow {
                return None;
            }
            let pre = i != 0;
            // fraction
            let mut f: u64 = 0;
            let mut scale: f64 = 1.0;
            let mut post = false;
            if i < bytes.len() && bytes[i] == b'.' {
                i += 1;
                let start = i;
                let mut frac_overflow = false;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    if !frac_overflow {
                        match f
                            .checked_mul(10)
                            .and_then(|x| x.checked_add((bytes[i] - b'0') as u64))
                        {
                            Some(x) if x <= 1 << 63 => {
                                f = x;
                                scale *= 10.0;
                            }
                            _ => frac_overflow = true,
                        }
                    }
                    i += 1;
                }
                post = i != start;
            }
            if !pre && !post {
                return None;
            }
            // unit
            let unit_start = i;
            while i < bytes.len() && bytes[i] != b'.' && !bytes[i].is_ascii_digit() {
                i += 1;
            }
            let unit_str = &rest[unit_start..i];
            let unit: u64 = match unit_str {
                "ns" => 1,
                "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                _ => return None,
            };
            if v > (1u64 << 63) / unit {
                return None;
            }
            v *= unit;
            if f > 0 {
                v += (f as f64 * (unit as f64 / scale)) as u64;
                if v > 1 << 63 {
                    return None;
                }
            }
            total = total.checked_add(v)?;
            if total > 1 << 63 {
                return None;
            }
            rest = &rest[i..];
        }
        if neg {
            if total > 1 << 63 {
                return None;
            }
            Some(Duration {
                nanos: (total as i128).wrapping_neg() as i64,
            })
        } else {
            if total > i64::MAX as u64 {
                return None;
            }
            Some(Duration {
                nanos: total as i64,
            })
        }
    }
}

impl fmt::Display for Duration {
    /// CEL's string form: seconds with the shortest decimal and an `s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.seconds_f64())
    }
}

/// Parses a time zone argument of the timestamp accessors: `UTC`, an empty
/// string, or a fixed offset `+HH:MM` / `-HH:MM`. Returns seconds east of UTC.
pub(super) fn parse_tz_offset(tz: &str) -> Option<i64> {
    if tz.is_empty() || tz == "UTC" || tz == "Etc/UTC" || tz == "GMT" || tz == "Z" {
        return Some(0);
    }
    let (sign, rest) = match tz.as_bytes().first()? {
        b'+' => (1, &tz[1..]),
        b'-' => (-1, &tz[1..]),
        _ => (1, tz),
    };
    let (h, m) = rest.split_once(':')?;
    if h.is_empty() || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: i64 = h.parse().ok()?;
    let m: i64 = m.parse().ok()?;
    if m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-719_162, -1, 0, 1, 10_957, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn parse_and_format() {
        let t = Timestamp::parse("2024-05-01T10:05:30.5Z").unwrap();
        assert_eq!(t.to_string(), "2024-05-01T10:05:30.5Z");
        let t = Timestamp::parse("2024-01-01T00:00:00+02:00").unwrap();
        assert_eq!(t.to_string(), "2023-12-31T22:00:00Z");
        assert!(Timestamp::parse("2024-02-30T00:00:00Z").is_none());
        assert!(Timestamp::parse("2024-02-29T00:00:00Z").is_some());
        assert_eq!(Duration::parse("1h30m").unwrap().nanos(), 5_400_000_000_000);
        assert_eq!(Duration::parse("1.5h").unwrap().to_string(), "5400s");
        assert_eq!(Duration::parse("100ns").unwrap().to_string(), "0.0000001s");
        assert!(Duration::parse("1d").is_none());
        assert!(Duration::parse("").is_none());
    }
}
