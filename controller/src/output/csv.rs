//! k6's CSV output: one row per sample under k6's header. `timestamp` is Unix seconds,
//! `metric_value` has 6 decimals (ms for time trends); tags with a column of their own fill
//! it, the others go to `extra_tags` as `key=value&key=value`.
use super::{Format, RawPoint};
use std::io::{self, Write};

/// k6's columns, in order.
pub const HEADER: [&str; 18] = [
    "metric_name",
    "timestamp",
    "metric_value",
    "check",
    "error",
    "error_code",
    "expected_response",
    "group",
    "method",
    "name",
    "proto",
    "scenario",
    "service",
    "status",
    "subproto",
    "tls_version",
    "url",
    "extra_tags",
];

/// The CSV format.
#[derive(Debug, Default)]
pub struct Csv;

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Format for Csv {
    fn begin(&mut self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "{}", HEADER.join(","))
    }

    fn write(&mut self, w: &mut dyn Write, points: &[RawPoint]) -> io::Result<()> {
        for p in points {
            let mut cols: [String; 18] = Default::default();
            cols[0] = field(&p.metric);
            cols[1] = p.time_unix_us.div_euclid(1_000_000).to_string();
            cols[2] = format!("{:.6}", p.k6_value());
            let mut extra = Vec::new();
            for (k, v) in &p.tags {
                match HEADER[3..17].iter().position(|h| h == k) {
                    Some(i) => cols[3 + i] = field(v),
                    None => extra.push(format!("{k}={v}")),
                }
            }
            cols[17] = field(&extra.join("&"));
            writeln!(w, "{}", cols.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_core::MetricKind;

    #[test]
    fn k6_rows_byte_for_byte() {
        let mut buf = Vec::new();
        let mut f = Csv;
        f.begin(&mut buf).unwrap();
        f.write(
            &mut buf,
            &[
                RawPoint {
                    metric: "http_req_duration".into(),
                    kind: MetricKind::Trend,
                    tags: vec![
                        ("method".into(), "POST".into()),
                        ("operation".into(), "run_wait".into()),
                        ("status".into(), "200".into()),
                        (
                            "url".into(),
                            "http://127.0.0.1:9/threads/x/runs/wait".into(),
                        ),
                        ("note".into(), "a,b".into()),
                    ],
                    time_unix_us: 1_735_787_045_678_901,
                    value: 12_345.0,
                },
                RawPoint {
                    metric: "http_reqs".into(),
                    kind: MetricKind::Counter,
                    tags: vec![],
                    time_unix_us: 1_735_787_046_000_000,
                    value: 1.0,
                },
            ],
        )
        .unwrap();
        let want = "metric_name,timestamp,metric_value,check,error,error_code,expected_response,group,method,name,proto,scenario,service,status,subproto,tls_version,url,extra_tags\n\
http_req_duration,1735787045,12.345000,,,,,,POST,,,,,200,,,http://127.0.0.1:9/threads/x/runs/wait,\"operation=run_wait&note=a,b\"\n\
http_reqs,1735787046,1.000000,,,,,,,,,,,,,,,\n";
        assert_eq!(String::from_utf8(buf).unwrap(), want);
    }
}
