//! The search for the limit: step the load up until a plateau is bad, then bisect between
//! the last good and the first bad plateau. Pure: the plateaus come from a probe function,
//! so the logic is tested with a model of a target instead of processes.
//!
//! A plateau is good ([`Verdict::good`]) when it keeps every limit:
//!
//! | check    | bad when                                                                    |
//! |----------|-----------------------------------------------------------------------------|
//! | latency  | p95 of the latency metric over `--p95`, or no sample of it                  |
//! | goodput  | under `--min-goodput`, or no flow completed                                 |
//! | errors   | share of failed requests over `--max-error-rate`, or no request at all      |
//! | growth   | throughput grew less than `--min-growth` × the load's relative growth over the last good plateau (the target is saturated) |
//! | validity | the run cannot be trusted: the generator, not the target, was the limit     |
//!
//! The first three are the SLO: capacity under SLO counts the plateaus that kept them (and
//! were valid), whatever their growth.
use super::config::{fmt_load, Limits, Settings};
use super::measure::Measured;
use serde::Serialize;

/// A plateau's verdict, with a reason per broken limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Latency, goodput and errors within their limits.
    pub slo_ok: bool,
    /// The run can be trusted.
    pub valid: bool,
    /// Throughput still grew with the load.
    pub growth_ok: bool,
    pub reasons: Vec<String>,
}

impl Verdict {
    pub fn good(&self) -> bool {
        self.slo_ok && self.valid && self.growth_ok
    }
}

/// Whether a plateau was a step up or a bisection point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Step,
    Bisect,
    /// A bad plateau run again at the same load (`--confirm`).
    Confirm,
}

/// One plateau run: its order, phase, figures and verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plateau {
    /// 1 for the first plateau run.
    pub n: u32,
    pub phase: Phase,
    #[serde(flatten)]
    pub measured: Measured,
    pub verdict: Verdict,
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Search {
    /// In the order they ran.
    pub plateaus: Vec<Plateau>,
    /// Loads of the last good and the first bad plateau.
    pub last_good: Option<f64>,
    pub first_bad: Option<f64>,
    /// Why the search ended.
    pub stop: String,
}

/// Judges `m` against `limits`; `prev_good` (a lower load) for the growth check.
pub fn judge(m: &Measured, prev_good: Option<&Measured>, limits: &Limits) -> Verdict {
    let mut reasons = Vec::new();
    let mut slo_ok = true;
    if let Some(l) = &limits.p95 {
        match m.p95_ms {
            None => {
                slo_ok = false;
                reasons.push(format!("no {} sample in the plateau", l.metric));
            }
            Some(p) if p > l.limit_ms => {
                slo_ok = false;
                reasons.push(format!(
                    "p95 {} {} ms > {} ms",
                    l.metric,
                    fmt_load(p.round()),
                    fmt_load(l.limit_ms)
                ));
            }
            Some(_) => {}
        }
    }
    match m.goodput {
        None => {
            slo_ok = false;
            reasons.push("no flow completed".into());
        }
        Some(g) if g < limits.min_goodput => {
            slo_ok = false;
            reasons.push(format!(
                "goodput {:.1} % < {:.1} %",
                g * 100.0,
                limits.min_goodput * 100.0
            ));
        }
        Some(_) => {}
    }
    match m.error_rate {
        None => {
            slo_ok = false;
            reasons.push("no request was made".into());
        }
        Some(e) if e > limits.max_error_rate => {
            slo_ok = false;
            reasons.push(format!(
                "errors {:.1} % > {:.1} %",
                e * 100.0,
                limits.max_error_rate * 100.0
            ));
        }
        Some(_) => {}
    }
    let valid = m.invalid.is_none();
    if let Some(why) = &m.invalid {
        reasons.push(format!("invalid run: {why}"));
    }
    let mut growth_ok = true;
    if let Some(p) = prev_good {
        if limits.min_growth > 0.0 && m.load > p.load && p.throughput > 0.0 {
            let load_growth = m.load / p.load - 1.0;
            let grew = m.throughput / p.throughput - 1.0;
            let needed = limits.min_growth * load_growth;
            if grew < needed {
                growth_ok = false;
                reasons.push(format!(
                    "throughput grew {:+.1} % for {:+.1} % load (needs {:+.1} %): saturated",
                    grew * 100.0,
                    load_growth * 100.0,
                    needed * 100.0
                ));
            }
        }
    }
    Verdict {
        slo_ok,
        valid,
        growth_ok,
        reasons,
    }
}

/// Runs the search: `probe(n, load)` runs plateau `n` (from 1) at `load`. A probe error
/// ends the search; the plateaus so far are kept.
pub fn search<E>(
    s: &Settings,
    mut probe: impl FnMut(u32, f64) -> Result<Measured, E>,
) -> (Search, Option<E>) {
    let mut out = Search::default();
    let mut good: Option<Measured> = None;
    let mut bad: Option<Measured> = None;
    let mut load = s.start;
    let mut n = 0u32;
    // plateau `n + 1` at `load`, and while it is bad up to `s.confirm` re-runs of it
    // (within --max-plateaus): bad only when every run was
    let mut run = |n: &mut u32,
                   load: f64,
                   phase: Phase,
                   good: &Option<Measured>,
                   out: &mut Search|
     -> Result<(Measured, bool), E> {
        let mut phase = phase;
        let mut tries = 0;
        loop {
            *n += 1;
            let m = probe(*n, load)?;
            let verdict = judge(&m, good.as_ref(), &s.limits);
            let ok = verdict.good();
            out.plateaus.push(Plateau {
                n: *n,
                phase,
                measured: m.clone(),
                verdict,
            });
            if ok || tries >= s.confirm || *n >= s.max_plateaus {
                return Ok((m, ok));
            }
            tries += 1;
            phase = Phase::Confirm;
        }
    };
    // step up until the first bad plateau
    loop {
        if n >= s.max_plateaus {
            out.stop = format!(
                "--max-plateaus {} reached while stepping up: no bad plateau found",
                s.max_plateaus
            );
            break;
        }
        match run(&mut n, load, Phase::Step, &good, &mut out) {
            Err(e) => return (finish(out, good, bad), Some(e)),
            Ok((m, true)) => {
                good = Some(m);
                if load >= s.max_load {
                    out.stop = format!(
                        "--max-load {} reached and still good: the limit is higher",
                        fmt_load(s.max_load)
                    );
                    break;
                }
                let next = s.by.round(s.step.next(load)).min(s.max_load);
                load = if next > load {
                    next
                } else {
                    load + s.by.resolution()
                };
            }
            Ok((m, false)) => {
                bad = Some(m);
                break;
            }
        }
    }
    if bad.is_some() && good.is_none() {
        out.stop = format!(
            "the first plateau ({} {}) is already bad: lower --start",
            fmt_load(s.start),
            s.by.unit()
        );
    }
    // bisect between the last good and the first bad plateau
    while let (Some(lo), Some(hi)) = (&good, &bad) {
        let (lo, hi) = (lo.load, hi.load);
        let precision = s.precision_for(hi);
        if hi - lo <= precision + 1e-9 {
            out.stop = format!(
                "bisection reached the precision ({} {}) between {} and {}",
                fmt_load(precision),
                s.by.unit(),
                fmt_load(lo),
                fmt_load(hi)
            );
            break;
        }
        let mid = s.by.round((lo + hi) / 2.0);
        if mid <= lo || mid >= hi {
            out.stop = format!(
                "no load between {} and {} on the {} grid",
                fmt_load(lo),
                fmt_load(hi),
                s.by.unit()
            );
            break;
        }
        if n >= s.max_plateaus {
            out.stop = format!(
                "--max-plateaus {} reached during bisection (between {} and {})",
                s.max_plateaus,
                fmt_load(lo),
                fmt_load(hi)
            );
            break;
        }
        match run(&mut n, mid, Phase::Bisect, &good, &mut out) {
            Err(e) => return (finish(out, good, bad), Some(e)),
            Ok((m, true)) => good = Some(m),
            Ok((m, false)) => bad = Some(m),
        }
    }
    (finish(out, good, bad), None)
}

fn finish(mut out: Search, good: Option<Measured>, bad: Option<Measured>) -> Search {
    out.last_good = good.map(|m| m.load);
    out.first_bad = bad.map(|m| m.load);
    if out.stop.is_empty() {
        out.stop = "stopped by an error (see above)".into();
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::config::{By, LatencyLimit, Step};
    use super::super::measure::GoodputSource;
    use super::*;
    use std::time::Duration;

    /// A target of `capacity` iterations/s whose latency is `base_ms` until it saturates,
    /// then grows with the queue: what the mock LLM's model mode does.
    pub(crate) fn model(load: f64, capacity: f64, base_ms: f64, by: By) -> Measured {
        let (throughput, p95) = match by {
            // closed model: `load` VUs each take `base_ms` per iteration, at most `capacity`
            By::Vus => {
                let free = load / (base_ms / 1e3);
                let thr = free.min(capacity);
                (thr, load / thr * 1e3)
            }
            // open model: beyond capacity the queue grows over the plateau
            By::Rate => {
                let thr = load.min(capacity);
                let over = (load - capacity).max(0.0) / capacity;
                (thr, base_ms * (1.0 + 20.0 * over))
            }
        };
        Measured {
            load,
            throughput,
            requests_per_s: throughput * 8.0,
            iterations: throughput * 30.0,
            vus_mean: load,
            p50_ms: Some(p95 * 0.8),
            p95_ms: Some(p95),
            p99_ms: Some(p95 * 1.1),
            goodput: Some(1.0),
            goodput_source: GoodputSource::AgentFlowSuccessRate,
            error_rate: Some(0.0),
            dropped_iterations: 0.0,
            target_cpu_pct: None,
            target_rss_bytes: None,
            workers: 1,
            invalid: None,
            summary: String::new(),
        }
    }

    pub(crate) fn settings(by: By, p95_ms: Option<f64>) -> Settings {
        Settings {
            by,
            start: 1.0,
            step: Step::Times(2.0),
            max_load: 1000.0,
            plateau: Duration::from_secs(3),
            warmup: Duration::from_secs(1),
            graceful_stop: Duration::from_secs(5),
            precision: Some(0.5),
            limits: Limits {
                p95: p95_ms.map(|limit_ms| LatencyLimit {
                    metric: "agent_flow_duration".into(),
                    limit_ms,
                }),
                min_goodput: 0.95,
                max_error_rate: 0.05,
                min_growth: 0.1,
            },
            max_plateaus: 20,
            confirm: 0,
            latency_metric: "agent_flow_duration".into(),
        }
    }

    /// A plateau disturbed once (noise on a shared host) is run again and its second,
    /// good verdict stands; a truly bad plateau stays bad after its confirmation.
    #[test]
    fn a_bad_plateau_is_confirmed_before_it_counts() {
        let mut s = settings(By::Rate, Some(1000.0));
        s.confirm = 1;
        let mut disturbed = false;
        let (r, err) = search(&s, |_, load| {
            let mut m = model(load, 11.1, 400.0, By::Rate);
            if load == 8.0 && !disturbed {
                disturbed = true;
                m.p95_ms = Some(5000.0);
            }
            Ok::<_, ()>(m)
        });
        assert!(err.is_none());
        let at = |load: f64| -> Vec<(Phase, bool)> {
            r.plateaus
                .iter()
                .filter(|p| p.measured.load == load)
                .map(|p| (p.phase, p.verdict.good()))
                .collect()
        };
        assert_eq!(at(8.0), [(Phase::Step, false), (Phase::Confirm, true)]);
        assert_eq!(at(16.0), [(Phase::Step, false), (Phase::Confirm, false)]);
        let (lo, hi) = (r.last_good.unwrap(), r.first_bad.unwrap());
        assert!(lo <= 11.1 * 1.075 && hi >= 11.1 && lo >= 8.0, "{lo}..{hi}");
        // without confirmation the disturbance decides
        s.confirm = 0;
        let mut disturbed = false;
        let (r, _) = search(&s, |_, load| {
            let mut m = model(load, 11.1, 400.0, By::Rate);
            if load == 8.0 && !disturbed {
                disturbed = true;
                m.p95_ms = Some(5000.0);
            }
            Ok::<_, ()>(m)
        });
        assert_eq!(r.first_bad, Some(8.0));
    }

    #[test]
    fn rate_search_brackets_the_capacity_within_the_precision() {
        let s = settings(By::Rate, Some(1000.0));
        let (r, err) = search(&s, |_, load| {
            Ok::<_, ()>(model(load, 11.1, 400.0, By::Rate))
        });
        assert!(err.is_none());
        let (lo, hi) = (r.last_good.unwrap(), r.first_bad.unwrap());
        assert!(hi - lo <= 0.5 + 1e-9, "{lo}..{hi}: {}", r.stop);
        assert!(lo <= 11.1 * 1.075 && hi >= 11.1, "{lo}..{hi}");
        let steps: Vec<f64> = r
            .plateaus
            .iter()
            .filter(|p| p.phase == Phase::Step)
            .map(|p| p.measured.load)
            .collect();
        assert_eq!(steps, [1.0, 2.0, 4.0, 8.0, 16.0]);
        assert!(r.stop.contains("precision"), "{}", r.stop);
    }

    #[test]
    fn closed_model_stops_when_throughput_flattens() {
        let mut s = settings(By::Vus, None);
        s.precision = Some(1.0);
        let (r, _) = search(&s, |_, load| Ok::<_, ()>(model(load, 10.0, 400.0, By::Vus)));
        // 4 VUs × 2.5/s = capacity: 8 VUs add no throughput
        let bad = r.plateaus.iter().find(|p| !p.verdict.good()).unwrap();
        assert_eq!(bad.measured.load, 8.0);
        assert!(
            !bad.verdict.growth_ok && bad.verdict.slo_ok,
            "{:?}",
            bad.verdict
        );
        assert!(bad.verdict.reasons[0].contains("saturated"));
        assert_eq!(r.last_good, Some(4.0), "{:?}", r.plateaus);
    }

    #[test]
    fn a_bad_first_plateau_is_reported_without_bisection() {
        let s = settings(By::Rate, Some(100.0));
        let (r, _) = search(&s, |_, load| {
            Ok::<_, ()>(model(load, 11.1, 400.0, By::Rate))
        });
        assert_eq!(r.plateaus.len(), 1);
        assert!(r.stop.contains("lower --start"), "{}", r.stop);
    }

    #[test]
    fn max_load_and_max_plateaus_bound_the_search() {
        let mut s = settings(By::Rate, Some(1000.0));
        s.max_load = 6.0;
        let (r, _) = search(&s, |_, load| {
            Ok::<_, ()>(model(load, 100.0, 400.0, By::Rate))
        });
        let loads: Vec<f64> = r.plateaus.iter().map(|p| p.measured.load).collect();
        assert_eq!(loads, [1.0, 2.0, 4.0, 6.0]);
        assert!(r.stop.contains("--max-load"), "{}", r.stop);
        s.max_load = 1000.0;
        s.max_plateaus = 3;
        let (r, _) = search(&s, |_, load| {
            Ok::<_, ()>(model(load, 100.0, 400.0, By::Rate))
        });
        assert_eq!(r.plateaus.len(), 3);
        assert!(r.stop.contains("--max-plateaus"), "{}", r.stop);
    }

    #[test]
    fn a_probe_error_keeps_the_plateaus_so_far() {
        let s = settings(By::Rate, Some(1000.0));
        let (r, err) = search(&s, |n, load| {
            if n == 3 {
                Err("no summary")
            } else {
                Ok(model(load, 11.1, 400.0, By::Rate))
            }
        });
        assert_eq!(err, Some("no summary"));
        assert_eq!(r.plateaus.len(), 2);
        assert_eq!(r.last_good, Some(2.0));
    }

    #[test]
    fn judge_names_every_broken_limit() {
        let s = settings(By::Rate, Some(500.0));
        let mut m = model(4.0, 10.0, 400.0, By::Rate);
        m.p95_ms = Some(900.0);
        m.goodput = Some(0.5);
        m.error_rate = Some(0.2);
        m.invalid = Some("3 iterations dropped".into());
        let v = judge(&m, None, &s.limits);
        assert!(!v.slo_ok && !v.valid && v.growth_ok);
        let all = v.reasons.join("; ");
        for part in [
            "p95 agent_flow_duration 900 ms > 500 ms",
            "goodput 50.0 %",
            "errors 20.0 %",
            "dropped",
        ] {
            assert!(all.contains(part), "{all}");
        }
        let ok = model(4.0, 10.0, 400.0, By::Rate);
        assert!(judge(&ok, None, &s.limits).good());
    }
}
