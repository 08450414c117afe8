//! Live progress on stderr: an indicatif bar on a terminal, a plain line every few seconds
//! otherwise (CI logs), nothing with `--no-progress`.
use barrage_core::duration::format_duration;
use barrage_core::ExecutorConfig;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

/// How often the plain form prints.
pub const LINE_EVERY: Duration = Duration::from_secs(5);

/// What the progress shows (from the last closed interval).
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub elapsed: Duration,
    pub stage: String,
    pub vus: u64,
    pub rps: f64,
    pub flow_p95_ms: f32,
    pub error_rate: f64,
    pub workers: usize,
    pub lost: usize,
    pub stopping: bool,
}

impl Status {
    /// One line: `12s/1m30s  stage 2/5 →3  vus 2  req/s 41.0  flow p95 35.1ms  errors 0.00%  workers 2`.
    pub fn line(&self, total: Duration) -> String {
        let p95 = if self.flow_p95_ms.is_finite() {
            format!("{:.1}ms", self.flow_p95_ms)
        } else {
            "-".into()
        };
        let mut s = format!(
            "{}/{}  {}  vus {}  req/s {:.1}  flow p95 {}  errors {:.2}%  workers {}",
            format_duration(Duration::from_secs(self.elapsed.as_secs())),
            format_duration(total),
            self.stage,
            self.vus,
            self.rps,
            p95,
            self.error_rate * 100.0,
            self.workers
        );
        if self.lost > 0 {
            s.push_str(&format!(" ({} lost)", self.lost));
        }
        if self.stopping {
            s.push_str("  stopping");
        }
        s
    }
}

/// Which stage the executor is in at `t`.
pub fn stage_label(e: &ExecutorConfig, t: Duration) -> String {
    match e {
        ExecutorConfig::RampingVus { stages, .. }
        | ExecutorConfig::RampingArrivalRate { stages, .. } => {
            let mut end = Duration::ZERO;
            for (i, s) in stages.iter().enumerate() {
                end += s.duration;
                if t < end {
                    return format!("stage {}/{} →{}", i + 1, stages.len(), s.target);
                }
            }
            "graceful stop".into()
        }
        other if t >= other.duration() => "graceful stop".into(),
        other => other.name().to_string(),
    }
}

enum Mode {
    Off,
    Bar(ProgressBar),
    Lines { last: Option<Instant> },
}

pub struct Progress {
    mode: Mode,
    total: Duration,
}

impl Progress {
    pub fn new(enabled: bool, total: Duration) -> Self {
        let mode = if !enabled {
            Mode::Off
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(
                Some(total.as_secs().max(1)),
                ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                ProgressStyle::with_template("{bar:30.cyan/blue} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Mode::Bar(bar)
        } else {
            Mode::Lines { last: None }
        };
        Progress { mode, total }
    }

    pub fn update(&mut self, s: &Status) {
        let total = self.total;
        match &mut self.mode {
            Mode::Off => {}
            Mode::Bar(bar) => {
                bar.set_position(s.elapsed.as_secs().min(total.as_secs()));
                bar.set_message(s.line(total));
            }
            Mode::Lines { last } => {
                if last.is_none_or(|l| l.elapsed() >= LINE_EVERY) {
                    *last = Some(Instant::now());
                    barrage_core::errln!("barrage: {}", s.line(total));
                }
            }
        }
    }

    pub fn finish(&mut self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_core::{Plan, Profile};

    #[test]
    fn stages() {
        let e = Plan::profile(Profile::Default).scenario;
        let cases = [
            (0, "stage 1/5 →1"),
            (15, "stage 2/5 →3"),
            (89, "stage 5/5 →1"),
            (95, "graceful stop"),
        ];
        for (t, want) in cases {
            assert_eq!(stage_label(&e, Duration::from_secs(t)), want, "t={t}");
        }
        let s = Status {
            elapsed: Duration::from_millis(12_400),
            stage: "stage 2/5 →3".into(),
            vus: 2,
            rps: 41.0,
            flow_p95_ms: 35.14,
            error_rate: 0.0,
            workers: 2,
            lost: 1,
            stopping: false,
        };
        assert_eq!(s.line(Duration::from_secs(90)), "12s/1m30s  stage 2/5 →3  vus 2  req/s 41.0  flow p95 35.1ms  errors 0.00%  workers 2 (1 lost)");
    }
}
