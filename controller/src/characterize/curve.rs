//! What a characterization reports ([`Report`], `characterize.json`): the whole curve
//! (load → throughput, latency percentiles, goodput, errors, target CPU/RSS), the capacity
//! under SLO, the max sustainable throughput and the knee; and its text table.
//!
//! Definitions (the plateaus sorted by load, invalid ones left out):
//! - capacity under SLO: the highest load of a plateau that kept the SLO (latency, goodput,
//!   errors; see `search.rs`).
//! - max sustainable throughput: the highest throughput of such a plateau, and its load.
//! - knee: where latency starts to rise faster than load. Between two neighbouring plateaus
//!   the relative slope (elasticity) is `e = (Δp95 / p95) / (Δload / load)`: 0 when latency
//!   holds, 1 when it grows as fast as the load. The baseline is the mean `e` of the first
//!   two segments (the first one when there are three plateaus); the knee is the first later
//!   plateau whose incoming `e` exceeds `max(2 × baseline, 0.25)`. The floor keeps noise on a
//!   flat start (a baseline near 0) from making a knee.
use super::config::{fmt_load, By, Settings};
use super::measure::GoodputSource;
use super::search::{Plateau, Search};
use serde::Serialize;
use std::fmt::Write as _;

/// The floor of the knee's slope threshold (see the module docs).
pub const KNEE_MIN_ELASTICITY: f64 = 0.25;

/// The knee of the latency curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Knee {
    /// The first plateau whose latency rose faster than the threshold, and the one before.
    pub load: f64,
    pub from_load: f64,
    /// The relative slope into `load`, the baseline, and the threshold it exceeded.
    pub elasticity: f64,
    pub baseline: f64,
    pub threshold: f64,
}

/// The highest throughput within the SLO.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sustained {
    /// Iterations (flows) per second.
    pub per_s: f64,
    pub at_load: f64,
}

/// `characterize.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub by: By,
    /// `vus` or `iterations/s`.
    pub unit: &'static str,
    pub settings: Settings,
    /// Where goodput came from (the first plateau's source; they are all alike).
    pub goodput_source: Option<GoodputSource>,
    pub capacity_under_slo: Option<f64>,
    pub max_sustainable_throughput: Option<Sustained>,
    pub knee: Option<Knee>,
    pub last_good: Option<f64>,
    pub first_bad: Option<f64>,
    /// Why the search ended.
    pub stop: String,
    /// Caveats (a goodput fallback, invalid plateaus).
    pub notes: Vec<String>,
    /// Every plateau, sorted by load.
    pub curve: Vec<Plateau>,
}

/// The knee of `curve` (sorted by load), per the module docs.
pub fn knee(curve: &[&Plateau]) -> Option<Knee> {
    let pts: Vec<(f64, f64)> = curve
        .iter()
        .filter_map(|p| p.measured.p95_ms.map(|l| (p.measured.load, l)))
        .filter(|(load, lat)| *load > 0.0 && *lat > 0.0)
        .collect();
    if pts.len() < 3 {
        return None;
    }
    let e: Vec<f64> = pts
        .windows(2)
        .map(|w| ((w[1].1 / w[0].1) - 1.0) / ((w[1].0 / w[0].0) - 1.0))
        .collect();
    let base_n = if pts.len() >= 4 { 2 } else { 1 };
    let baseline = e[..base_n].iter().sum::<f64>() / base_n as f64;
    let threshold = (2.0 * baseline).max(KNEE_MIN_ELASTICITY);
    e.iter()
        .enumerate()
        .skip(base_n)
        .find(|(_, v)| **v > threshold)
        .map(|(i, v)| Knee {
            load: pts[i + 1].0,
            from_load: pts[i].0,
            elasticity: *v,
            baseline,
            threshold,
        })
}

impl Report {
    /// The report of a finished (or stopped) search.
    pub fn of(settings: &Settings, search: Search) -> Report {
        let mut curve = search.plateaus;
        curve.sort_by(|a, b| a.measured.load.total_cmp(&b.measured.load));
        let valid: Vec<&Plateau> = curve.iter().filter(|p| p.verdict.valid).collect();
        let within: Vec<&&Plateau> = valid.iter().filter(|p| p.verdict.slo_ok).collect();
        let capacity_under_slo = within
            .iter()
            .map(|p| p.measured.load)
            .max_by(f64::total_cmp);
        let max_sustainable_throughput = within
            .iter()
            .max_by(|a, b| a.measured.throughput.total_cmp(&b.measured.throughput))
            .map(|p| Sustained {
                per_s: p.measured.throughput,
                at_load: p.measured.load,
            });
        let knee = knee(&valid);
        let goodput_source = curve.first().map(|p| p.measured.goodput_source);
        let mut notes = Vec::new();
        if let Some(src) = goodput_source.filter(|s| *s != GoodputSource::FlowGoodput) {
            notes.push(format!("goodput is {}", src.describe()));
        }
        let invalid = curve.iter().filter(|p| !p.verdict.valid).count();
        if invalid > 0 {
            notes.push(format!(
                "{invalid} plateau(s) invalid: the generator or the rig, not the target, was the limit there (see their reasons); left out of capacity, throughput and knee"
            ));
        }
        Report {
            by: settings.by,
            unit: settings.by.unit(),
            settings: settings.clone(),
            goodput_source,
            capacity_under_slo,
            max_sustainable_throughput,
            knee,
            last_good: search.last_good,
            first_bad: search.first_bad,
            stop: search.stop,
            notes,
            curve,
        }
    }

    /// The human table and verdict lines.
    pub fn text(&self) -> String {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
        let pct = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{:.1}", v * 100.0));
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{:>3} {:>6} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>7} {:>8}  verdict",
            "#",
            "phase",
            self.unit,
            "thr/s",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "good %",
            "err %",
            "cpu %",
            "rss MB"
        );
        for p in &self.curve {
            let m = &p.measured;
            let verdict = if p.verdict.good() {
                "good".to_string()
            } else {
                format!("bad: {}", p.verdict.reasons.join("; "))
            };
            let _ = writeln!(
                t,
                "{:>3} {:>6} {:>10} {:>9.2} {:>8.1} {:>8} {:>8} {:>8} {:>7} {:>6} {:>7} {:>8}  {verdict}",
                p.n,
                match p.phase {
                    super::search::Phase::Step => "step",
                    super::search::Phase::Bisect => "bisect",
                    super::search::Phase::Confirm => "confirm",
                },
                fmt_load(m.load),
                m.throughput,
                m.requests_per_s,
                opt(m.p50_ms),
                opt(m.p95_ms),
                opt(m.p99_ms),
                pct(m.goodput),
                pct(m.error_rate),
                m.target_cpu_pct.map_or_else(|| "-".into(), |c| format!("{c:.0}")),
                m.target_rss_bytes
                    .map_or_else(|| "-".into(), |b| format!("{:.0}", b as f64 / 1e6)),
            );
        }
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "capacity under SLO:         {}",
            self.capacity_under_slo.map_or_else(
                || "none: no plateau kept the SLO".into(),
                |c| format!("{} {}", fmt_load(c), self.unit)
            )
        );
        let _ = writeln!(
            t,
            "max sustainable throughput: {}",
            self.max_sustainable_throughput.as_ref().map_or_else(
                || "none".into(),
                |s| format!(
                    "{:.2} iterations/s (at {} {})",
                    s.per_s,
                    fmt_load(s.at_load),
                    self.unit
                )
            )
        );
        let _ = writeln!(
            t,
            "knee:                       {}",
            self.knee.as_ref().map_or_else(
                || "none found (latency never rose faster than load, or too few plateaus)".into(),
                |k| format!(
                    "{} {} (p95 rose {:.2}x as fast as load from {}; baseline {:.2}, threshold {:.2})",
                    fmt_load(k.load),
                    self.unit,
                    k.elasticity,
                    fmt_load(k.from_load),
                    k.baseline,
                    k.threshold
                )
            )
        );
        let _ = writeln!(t, "search ended:               {}", self.stop);
        for n in &self.notes {
            let _ = writeln!(t, "note: {n}");
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::super::search::{search, tests as model};
    use super::*;

    #[test]
    fn rate_report_finds_capacity_throughput_and_knee() {
        let s = model::settings(By::Rate, Some(1000.0));
        let (r, _) = search(&s, |_, load| {
            Ok::<_, ()>(model::model(load, 11.1, 400.0, By::Rate))
        });
        let rep = Report::of(&s, r);
        let cap = rep.capacity_under_slo.unwrap();
        assert!((cap - 11.1).abs() / 11.1 <= 0.1, "{cap}");
        let thr = rep.max_sustainable_throughput.as_ref().unwrap();
        assert!((thr.per_s - 11.1).abs() / 11.1 <= 0.1, "{thr:?}");
        let loads: Vec<f64> = rep.curve.iter().map(|p| p.measured.load).collect();
        assert!(loads.windows(2).all(|w| w[0] < w[1]), "sorted: {loads:?}");
        // latency is flat to the capacity, then rises: the knee is past the capacity
        let k = rep.knee.as_ref().unwrap();
        assert!(k.load > 11.1 && k.from_load <= 12.0, "{k:?}");
        let text = rep.text();
        assert!(
            text.contains("capacity under SLO:         11.5 iterations/s"),
            "{text}"
        );
        assert!(
            text.contains("goodput is agent_flow_success_rate"),
            "{text}"
        );
    }

    #[test]
    fn flat_latency_has_no_knee_and_a_steep_one_has() {
        let plateau = |load: f64, p95: f64| {
            let mut m = model::model(load, 1e9, 100.0, By::Rate);
            m.p95_ms = Some(p95);
            Plateau {
                n: 1,
                phase: super::super::search::Phase::Step,
                measured: m,
                verdict: super::super::search::Verdict {
                    slo_ok: true,
                    valid: true,
                    growth_ok: true,
                    reasons: vec![],
                },
            }
        };
        let flat = [
            plateau(1.0, 100.0),
            plateau(2.0, 101.0),
            plateau(4.0, 99.0),
            plateau(8.0, 104.0),
        ];
        assert_eq!(knee(&flat.iter().collect::<Vec<_>>()), None);
        let steep = [
            plateau(1.0, 100.0),
            plateau(2.0, 105.0),
            plateau(4.0, 110.0),
            plateau(8.0, 300.0),
        ];
        let k = knee(&steep.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!((k.load, k.from_load), (8.0, 4.0));
        assert!(
            k.elasticity > 1.0 && k.threshold == KNEE_MIN_ELASTICITY,
            "{k:?}"
        );
        assert!(knee(&steep[..2].iter().collect::<Vec<_>>()).is_none());
    }
}
