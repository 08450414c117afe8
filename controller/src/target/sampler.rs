//! The sampling task: one reading of the target per interval into a
//! [`TelemetryRecorder`], and a watch on a target barrage started, so a crash or an OOM kill
//! is recorded with the memory it had just before.
use super::cgroup::Cgroup;
use super::command::TargetProcess;
use super::procfs;
use barrage_core::telemetry::{Limits, Reading, TelemetryRecorder};
use std::os::unix::process::ExitStatusExt as _;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What is read.
#[derive(Debug)]
pub enum Source {
    /// A process and its descendants, from `/proc`.
    Tree(u32),
    /// A control group (a tier's, `--target-cgroup`, a container's).
    Group(Cgroup),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Tree(pid) => format!("pid {pid} and descendants"),
            Source::Group(g) => g.describe(),
        }
    }

    /// One reading; `None` when a process tree is gone.
    pub fn read(&self, at_s: f64) -> Option<Reading> {
        match self {
            Source::Tree(pid) => procfs::read_tree(*pid, at_s),
            Source::Group(g) => Some(g.read(at_s)),
        }
    }

    fn oom_kills(&self) -> u64 {
        match self {
            Source::Group(g) => g.oom_kills(),
            Source::Tree(_) => 0,
        }
    }
}

/// What the sampler hands back at the end.
#[derive(Debug)]
pub struct Finished {
    pub recorder: TelemetryRecorder,
    /// The target command, still to be stopped (unless it ended).
    pub process: Option<TargetProcess>,
    /// Kept alive until here: dropping a created cgroup removes it.
    pub source: Source,
}

/// A running sampler.
pub struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Finished>,
}

impl Sampler {
    /// Takes a first reading now, then one every `interval` until [`Sampler::finish`].
    pub fn start(
        source: Source,
        limits: Limits,
        process: Option<TargetProcess>,
        interval: Duration,
        ladder: barrage_core::timeseries::Ladder,
        origin: Instant,
        live: Option<crate::dashboard::LiveFeed>,
    ) -> Sampler {
        let (stop, mut stop_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut recorder =
                TelemetryRecorder::new(source.describe(), limits).with_ladder(ladder);
            let mut process = process;
            let oom_before = source.oom_kills();
            let now = |o: Instant| o.elapsed().as_secs_f64();
            if let Some(r) = source.read(now(origin)) {
                recorder.push(r);
            }
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                let stopping = tokio::select! {
                    _ = &mut stop_rx => true,
                    _ = tick.tick() => false,
                };
                if recorder.has_ended() {
                    if stopping {
                        break;
                    }
                    continue;
                }
                let status = process.as_mut().and_then(TargetProcess::exit_status);
                match (status, source.read(now(origin))) {
                    (None, Some(r)) => {
                        recorder.push(r);
                        // the dashboard shows the target's load as it is sampled
                        if let (Some(l), Some(p)) = (&live, recorder.last_point()) {
                            l.target_load(crate::dashboard::TargetLoad {
                                cpu_pct: p.cpu_pct,
                                rss_bytes: p.rss_bytes,
                            });
                        }
                    }
                    (Some(s), _) => {
                        let oom = source.oom_kills() > oom_before;
                        if let Source::Group(g) = &source {
                            if let Some(max) = g.max_bytes() {
                                recorder.peak(max);
                            }
                        }
                        tracing::warn!(status = %s, oom, "the target ended during the run");
                        recorder.ended(now(origin), oom, s.code(), s.signal());
                    }
                    (None, None) => {
                        tracing::warn!("the target's processes are gone");
                        recorder.ended(now(origin), false, None, None);
                    }
                }
                if stopping {
                    break;
                }
            }
            Finished {
                recorder,
                process,
                source,
            }
        });
        Sampler { stop, task }
    }

    /// Takes a last reading and returns everything.
    pub async fn finish(self) -> anyhow::Result<Finished> {
        let _ = self.stop.send(());
        Ok(self.task.await?)
    }
}
