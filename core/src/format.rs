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

/// A byte count the way k6 prints `data_sent`/`data_received` (go-humanize's SI bytes):
/// `9 B`, `1.5 kB`, `77 MB`; one decimal below 10 of a unit, none above.
pub fn fmt_bytes(bytes: f64) -> String {
    if !bytes.is_finite() || bytes < 0.0 {
        return fmt_num(bytes);
    }
    if bytes < 10.0 {
        return format!("{} B", bytes as u64);
    }
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((bytes.log10() / 3.0).floor() as usize).min(UNITS.len() - 1);
    let v = (bytes / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if v < 10.0 {
        format!("{v:.1} {}", UNITS[e])
    } else {
        format!("{v:.0} {}", UNITS[e])
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
        for (b, want) in [
            (9.0, "9 B"),
            (999.0, "999 B"),
            (1500.0, "1.5 kB"),
            (82_854.0, "83 kB"),
            (77_222_056.0, "77 MB"),
            (857_877.37, "858 kB"),
            (3.2e12, "3.2 TB"),
        ] {
            assert_eq!(fmt_bytes(b), want, "{b}");
        }
        assert_eq!(fmt_num(12.345), "12.35");
    }
}
