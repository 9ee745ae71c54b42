//! Calendar dates and the timestamp formats Inspector prints, without a date-time dependency.
//!
//! Inspector findings carry timestamps in three shapes depending on who printed them: RFC 3339
//! (`2024-09-04T16:55:38.411000+00:00`, the AWS CLI), epoch seconds (the raw API JSON) and the
//! Java-style `Wed Sep 04 16:55:38.411 UTC 2024` (EventBridge `Inspector2 Finding` details).
//! Policies name allowlist expiry dates as `YYYY-MM-DD`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A calendar date (UTC), as written in policies: `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year (1970..=9999).
    pub year: i32,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of month, 1..=31 (checked against the month).
    pub day: u32,
}

impl Date {
    /// Parse exactly `YYYY-MM-DD`, checking that the day exists.
    pub fn parse(s: &str) -> Result<Date, String> {
        let bad = || format!("{s:?} is not a date in the form YYYY-MM-DD");
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
            let part = &s[r];
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let (year, month, day) = (num(0..4)? as i32, num(5..7)?, num(8..10)?);
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(format!("{s:?} is not a valid calendar date"));
        }
        Ok(Date { year, month, day })
    }

    /// The UTC date of an instant.
    pub fn of(t: SystemTime) -> Date {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64) - 1,
        };
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        Date { year, month, day }
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's civil-date algorithms (public domain).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parse a finding timestamp: RFC 3339 (any offset, optional fraction) or Inspector's
/// `Wed Sep 04 16:55:38.411 UTC 2024`. Returns the instant.
pub fn parse_timestamp(s: &str) -> Result<SystemTime, String> {
    parse_rfc3339(s)
        .or_else(|| parse_java_style(s))
        .ok_or_else(|| {
            format!(
                "{s:?} is not a timestamp (expected RFC 3339 or \"Wed Sep 04 16:55:38.411 UTC 2024\")"
            )
        })
}

/// `t` as RFC 3339 in UTC to the second (`2026-12-04T14:31:12Z`), for annotations and
/// attestations.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let date = Date::of(t);
    let in_day = secs.rem_euclid(86_400);
    format!(
        "{date}T{:02}:{:02}:{:02}Z",
        in_day / 3600,
        (in_day % 3600) / 60,
        in_day % 60
    )
}

/// An instant from epoch seconds (the raw API's timestamp encoding), to the millisecond (the
/// precision Inspector uses; finer digits are float noise).
pub fn from_epoch_seconds(secs: f64) -> Option<SystemTime> {
    (secs.is_finite() && (0.0..1e12).contains(&secs))
        .then(|| UNIX_EPOCH + Duration::from_millis((secs * 1000.0).round() as u64))
}

fn instant(
    date: Date,
    h: u32,
    mi: u32,
    s: u32,
    nanos: u32,
    offset_secs: i64,
) -> Option<SystemTime> {
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let secs = date.days() * 86_400 + i64::from(h * 3600 + mi * 60 + s) - offset_secs;
    u64::try_from(secs)
        .ok()
        .map(|secs| UNIX_EPOCH + Duration::new(secs, nanos))
}

/// `HH:MM:SS[.fff…]` → (h, m, s, nanos).
fn parse_clock(s: &str) -> Option<(u32, u32, u32, u32)> {
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let mut parts = hms.split(':');
    let mut next = || -> Option<u32> {
        let p = parts.next()?;
        (p.len() == 2 && p.bytes().all(|c| c.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let (h, m, sec) = (next()?, next()?, next()?);
    let nanos = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|c| c.is_ascii_digit()) => {
            format!("{f:0<9}").parse().ok()?
        }
        Some(_) => return None,
    };
    Some((h, m, sec, nanos))
}

fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    if s.len() < 20 {
        return None;
    }
    let date = Date::parse(s.get(..10)?).ok()?;
    let sep = s.as_bytes()[10];
    if !matches!(sep, b'T' | b't' | b' ') {
        return None;
    }
    let rest = &s[11..];
    let (clock, offset) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (c, off) = rest.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        if oh.len() != 2 || om.len() != 2 {
            return None;
        }
        let (oh, om): (i64, i64) = (oh.parse().ok()?, om.parse().ok()?);
        (c, sign * (oh * 3600 + om * 60))
    };
    let (h, m, sec, nanos) = parse_clock(clock)?;
    instant(date, h, m, sec, nanos, offset)
}

fn parse_java_style(s: &str) -> Option<SystemTime> {
    // Wed Sep 04 16:55:38.411 UTC 2024
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_weekday, month, day, clock, zone, year] = parts.as_slice() else {
        return None;
    };
    if !matches!(*zone, "UTC" | "GMT" | "Z") {
        return None;
    }
    let month = MONTHS.iter().position(|m| m == month)? as u32 + 1;
    let year: i32 = year.parse().ok()?;
    let day: u32 = day.parse().ok()?;
    let date = Date::parse(&format!("{year:04}-{month:02}-{day:02}")).ok()?;
    let (h, m, sec, nanos) = parse_clock(clock)?;
    instant(date, h, m, sec, nanos, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_through_the_parser() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_394_672);
        let s = rfc3339(t);
        assert_eq!(s, "2026-12-04T14:31:12Z");
        assert_eq!(parse_timestamp(&s).unwrap(), t);
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    fn secs(t: SystemTime) -> f64 {
        t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
    }

    #[test]
    fn dates_parse_strictly_and_round_trip() {
        let d = Date::parse("2026-12-01").unwrap();
        assert_eq!(d.to_string(), "2026-12-01");
        assert_eq!(Date::parse("2024-02-29").unwrap().day, 29);
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "2026-1-01",
            "26-12-01",
            "2026/12/01",
            "tomorrow",
        ] {
            assert!(Date::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Date::of(UNIX_EPOCH).to_string(), "1970-01-01");
        let t = UNIX_EPOCH + Duration::from_secs(d.days() as u64 * 86_400 + 86_399);
        assert_eq!(Date::of(t), d);
        assert_eq!(
            Date::of(t + Duration::from_secs(1)).to_string(),
            "2026-12-02"
        );
    }

    #[test]
    fn both_timestamp_styles_name_the_same_instant() {
        let java = parse_timestamp("Wed Sep 04 16:55:38.411 UTC 2024").unwrap();
        let rfc = parse_timestamp("2024-09-04T16:55:38.411Z").unwrap();
        let cli = parse_timestamp("2024-09-04T18:55:38.411000+02:00").unwrap();
        assert_eq!(java, rfc);
        assert_eq!(rfc, cli);
        assert!((secs(java) - 1_725_468_938.411).abs() < 1e-6);
        for bad in [
            "Wed Sep 34 16:55:38.411 UTC 2024",
            "2024-09-04",
            "yesterday",
            "",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }
}
