//! UTC time without a date crate: seconds since the epoch, the civil calendar, and the two text forms drydock
//! writes (`20260102T030405Z` in file names, RFC 3339 in manifests, logs and `--json`).
//!
//! Retention and backup names round-trip through this exactly; the civil-date arithmetic is Howard Hinnant's
//! public-domain algorithm, small enough to own.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};

/// Seconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

impl Timestamp {
    pub fn now() -> Timestamp {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Timestamp(secs as i64)
    }

    pub fn from_civil(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Timestamp {
        Timestamp(days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s))
    }

    /// Day number since the epoch (the daily retention bucket).
    pub fn day(self) -> i64 {
        self.0.div_euclid(86_400)
    }

    /// The day number of this week's Monday (the weekly bucket, ISO weeks start on Monday).
    pub fn week(self) -> i64 {
        let day = self.day();
        // 1970-01-01 was a Thursday: (day + 3) mod 7 is 0 on Mondays.
        day - (day + 3).rem_euclid(7)
    }

    /// Year and month (the monthly bucket).
    pub fn month(self) -> (i64, u32) {
        let (y, m, _) = civil_from_days(self.day());
        (y, m)
    }

    fn parts(self) -> (i64, u32, u32, u32, u32, u32) {
        let (y, m, d) = civil_from_days(self.day());
        let secs = self.0.rem_euclid(86_400) as u32;
        (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
    }

    /// `20260102T030405Z`: the form used in file names.
    pub fn compact(self) -> String {
        let (y, m, d, h, mi, s) = self.parts();
        format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}Z")
    }

    /// `2026-01-02T03:04:05Z` (RFC 3339): the form used in manifests and `--json`.
    pub fn rfc3339(self) -> String {
        let (y, m, d, h, mi, s) = self.parts();
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }

    /// Parses the compact form, strictly (the exact 16 characters, a real date, UTC).
    pub fn parse_compact(text: &str) -> Result<Timestamp> {
        let b = text.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            let s = text.get(r)?;
            s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok()).flatten()
        };
        let shape_ok = b.len() == 16 && b[8] == b'T' && b[15] == b'Z';
        let fields = (
            digits(0..4),
            digits(4..6),
            digits(6..8),
            digits(9..11),
            digits(11..13),
            digits(13..15),
        );
        let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) = fields else {
            bail!("`{text}` is not a UTC timestamp of the form YYYYMMDDTHHMMSSZ");
        };
        let y = i64::from(y);
        if !shape_ok || !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59 {
            bail!("`{text}` is not a valid UTC timestamp of the form YYYYMMDDTHHMMSSZ");
        }
        Ok(Timestamp::from_civil(y, mo, d, h, mi, s))
    }

    /// Parses the RFC 3339 form [`Timestamp::rfc3339`] writes (`2026-01-02T03:04:05Z`), strictly.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp> {
        let b = text.as_bytes();
        let shape_ok = b.len() == 20 && [4, 7].iter().all(|&i| b[i] == b'-') && [13, 16].iter().all(|&i| b[i] == b':');
        if !shape_ok {
            bail!("`{text}` is not a UTC timestamp of the form YYYY-MM-DDTHH:MM:SSZ");
        }
        let compact: String = text.chars().filter(|c| *c != '-' && *c != ':').collect();
        Timestamp::parse_compact(&compact)
            .map_err(|_| anyhow::anyhow!("`{text}` is not a valid UTC timestamp of the form YYYY-MM-DDTHH:MM:SSZ"))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_four_centuries() {
        for day in (-146_097 * 2..146_097 * 2).step_by(97) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }

    #[test]
    fn compact_and_rfc3339_format() {
        let ts = Timestamp::from_civil(2026, 1, 2, 3, 4, 5);
        assert_eq!(ts.compact(), "20260102T030405Z");
        assert_eq!(ts.rfc3339(), "2026-01-02T03:04:05Z");
        assert_eq!(Timestamp(0).compact(), "19700101T000000Z");
        // A leap day and the last second of a year.
        assert_eq!(
            Timestamp::from_civil(2024, 2, 29, 23, 59, 59).compact(),
            "20240229T235959Z"
        );
        assert_eq!(
            Timestamp::from_civil(2025, 12, 31, 23, 59, 59).0 + 1,
            Timestamp::from_civil(2026, 1, 1, 0, 0, 0).0
        );
    }

    #[test]
    fn parse_round_trips_and_is_strict() {
        for secs in [0, 951_782_400, 1_709_251_199, 1_767_323_045, 4_102_444_799] {
            let ts = Timestamp(secs);
            assert_eq!(Timestamp::parse_compact(&ts.compact()).unwrap(), ts);
        }
        for bad in [
            "20260102T030405",    // no Z
            "20260102 030405Z",   // no T
            "2026-01-02T030405Z", // separators
            "20261302T030405Z",   // month 13
            "20230229T000000Z",   // not a leap year
            "20260431T000000Z",   // April has 30 days
            "20260102T240000Z",   // hour 24
            "20260102T036005Z",   // minute 60
            "2026010xT030405Z",
            "",
        ] {
            assert!(Timestamp::parse_compact(bad).is_err(), "{bad} was accepted");
        }
        assert!(Timestamp::parse_compact("20240229T120000Z").is_ok());
    }

    #[test]
    fn rfc3339_round_trips_and_is_strict() {
        for secs in [0, 951_782_400, 1_767_323_045] {
            let ts = Timestamp(secs);
            assert_eq!(Timestamp::parse_rfc3339(&ts.rfc3339()).unwrap(), ts);
        }
        for bad in [
            "2026-01-02T03:04:05",
            "2026-01-02 03:04:05Z",
            "20260102T030405Z",
            "2026-02-30T00:00:00Z",
            "",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn buckets() {
        // 2026-11-22 is a Sunday; its ISO week began on Monday 2026-11-16.
        let sunday = Timestamp::from_civil(2026, 11, 22, 23, 0, 0);
        let monday = Timestamp::from_civil(2026, 11, 16, 0, 0, 0);
        let next_monday = Timestamp::from_civil(2026, 11, 23, 0, 0, 0);
        assert_eq!(sunday.week(), monday.day());
        assert_eq!(next_monday.week(), next_monday.day());
        assert_ne!(sunday.week(), next_monday.week());
        assert_eq!(sunday.month(), (2026, 11));
        assert_eq!(Timestamp(-1).day(), -1, "before the epoch rounds down");
    }
}
