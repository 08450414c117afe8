//! Numbers in summaries, the way k6 prints them: `850µs`, `12.34ms`, `1.50s`, `2m3s`, and
//! whole counts without decimals.

/// A duration given in milliseconds.
pub fn fmt_ms(ms: f64) -> String {
    if !ms.is_finite() {
        return "-".into();
    }
    if ms < 1.0 {
        format!("{:.0}µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.2}ms")
    } else if ms < 60_000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        let s = (ms / 1000.0).round() as u64;
        format!("{}m{}s", s / 60, s % 60)
    }
}

/// A count or value: whole numbers without decimals, others with two.
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_k6() {
        let cases = [
            (0.85, "850µs"),
            (12.344, "12.34ms"),
            (1500.0, "1.50s"),
            (123_000.0, "2m3s"),
            (f64::NAN, "-"),
        ];
        for (ms, want) in cases {
            assert_eq!(fmt_ms(ms), want);
        }
        assert_eq!(fmt_num(74988.0), "74988");
        assert_eq!(fmt_num(12.345), "12.35");
    }
}
