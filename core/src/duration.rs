//! k6-style durations: `250ms`, `10s`, `1m30s`, `2h`, `1.5s`. A bare number is seconds.
use std::time::Duration;

/// Parses a k6 duration. Units: `us`/`µs`, `ms`, `s`, `m`, `h`; parts may be combined
/// (`1h2m3s`). A bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; use e.g. 10s, 1m30s, 250ms".into());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs, text);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration {text:?} lacks a unit; use e.g. 10s, 1m30s, 250ms"))?;
        if num_len == 0 {
            return Err(format!(
                "duration {text:?} is malformed; use e.g. 10s, 1m30s, 250ms"
            ));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("duration {text:?} has a bad number; use e.g. 10s, 1m30s"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => {
                return Err(format!(
                    "duration {text:?} has unknown unit {unit:?}; use ms, s, m or h"
                ))
            }
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    secs_to_duration(total, text)
}

/// Longest duration accepted: a year. Longer ones are typos, and a time far beyond it would
/// not fit a `Duration` (or an `Instant` once added to now).
pub const MAX_SECS: f64 = 365.0 * 24.0 * 3600.0;

fn secs_to_duration(secs: f64, text: &str) -> Result<Duration, String> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("duration {text:?} must be a non-negative time"));
    }
    if secs > MAX_SECS {
        return Err(format!(
            "duration {text:?} is longer than a year (8760h); give a shorter time"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Formats a duration the way k6 prints one: `1m30s`, `250ms`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        if ms < 1000 {
            return format!("{ms}ms");
        }
        return format!("{:.3}s", d.as_secs_f64());
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    if secs >= 3600 {
        out.push_str(&format!("{}h", secs / 3600));
        secs %= 3600;
    }
    if secs >= 60 {
        out.push_str(&format!("{}m", secs / 60));
        secs %= 60;
    }
    if secs > 0 {
        out.push_str(&format!("{secs}s"));
    }
    out
}

/// `#[serde(with = "barrage_core::duration::serde_str")]` for `Duration` fields.
pub mod serde_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Secs(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => super::parse_duration(&t).map_err(serde::de::Error::custom),
            Raw::Secs(n) => super::parse_duration(&n.to_string()).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k6_durations() {
        let cases: &[(&str, u64)] = &[
            ("10s", 10_000),
            ("1m30s", 90_000),
            ("250ms", 250),
            ("2h", 7_200_000),
            ("1.5s", 1_500),
            ("90", 90_000),
            ("1h2m3s", 3_723_000),
            ("0s", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text).unwrap().as_millis() as u64,
                *ms,
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_bad_durations() {
        // the last two panicked (`Duration::from_secs_f64` overflow) before the cap: found by
        // core/tests/fuzz.rs, corpus file plan/bad-huge-duration.toml
        for text in [
            "",
            "s",
            "10x",
            "-5s",
            "1m-3s",
            "abc",
            "99999999999999999h",
            "1e300",
        ] {
            assert!(parse_duration(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["10s", "1m30s", "250ms", "2h", "1h2m3s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
