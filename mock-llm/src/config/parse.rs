//! Each setting's accepted form, as text in and a typed value (or `None`) out: shared by the
//! flags, the environment and `/admin/config`, so all three accept and name the same forms.
use super::{ErrorStatus, Mode, MAX_MS};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Accepted forms, shared with `/admin/config` so both say the same.
pub(crate) const EXPECT_MS: &str = "whole milliseconds 0..=600000";
pub(crate) const EXPECT_RATE: &str = "a probability 0..=1 such as 0.01";
pub(crate) const EXPECT_STATUS: &str = "one of 429, 500, 503";
pub(crate) const EXPECT_PER_TOKEN_US: &str = "whole microseconds 0..=1000000";
pub(crate) const EXPECT_TOKENS_PER_S: &str = "tokens per second 0.1..=1000000 such as 50 or 12.5";
pub(crate) fn parse_ms(s: &str) -> Option<Duration> {
    parse_bounded(s, 0, MAX_MS).map(Duration::from_millis)
}

pub(super) fn parse_bounded(s: &str, min: u64, max: u64) -> Option<u64> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<u64>().ok().filter(|n| (min..=max).contains(n))
}

pub(crate) fn parse_rate(s: &str) -> Option<f64> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && (0.0..=1.0).contains(r))
}

/// Microseconds per prompt token, 0..=1 s.
pub(crate) fn parse_per_token_us(s: &str) -> Option<Duration> {
    parse_bounded(s, 0, 1_000_000).map(Duration::from_micros)
}

/// A token rate, 0.1..=1e6 per second.
pub(crate) fn parse_tokens_per_s(s: &str) -> Option<f64> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && (0.1..=1_000_000.0).contains(r))
}

/// `true`/`false`, `1`/`0` (any case for the words).
pub(super) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

pub(super) fn parse_mode(s: &str) -> Option<Mode> {
    match s.trim() {
        "fixed" => Some(Mode::Fixed),
        "model" => Some(Mode::Model),
        _ => None,
    }
}

pub(super) fn parse_host(s: &str) -> Option<IpAddr> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    t.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

pub(crate) fn parse_error_status(s: &str) -> Option<ErrorStatus> {
    match s.trim() {
        "429" => Some(ErrorStatus::TooManyRequests),
        "500" => Some(ErrorStatus::Internal),
        "503" => Some(ErrorStatus::Unavailable),
        _ => None,
    }
}
