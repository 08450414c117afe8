//! A fleet on one controller: N simulated workers (real gRPC `Join` streams from this one
//! process, `barrage_controller::coordinator::simulate`) against a real `barrage
//! controller` process, each sending a realistic 100-series snapshot every interval.
//!
//! Per N it reports what a user of a large fleet would check:
//! - join-to-start: from the last worker's `Welcome` to stage time 0 (the `start_at` the
//!   controller chose), and whether every worker had its `Start` before it;
//! - merge CPU: the controller process's CPU (utime + stime from `/proc/<pid>/stat`) over
//!   the steady part of the run, as % of one core;
//! - controller RSS: sampled every second; after a warm-up (the first [`WARMUP_S`] s of
//!   stage time) its level per worker and its least-squares slope with the 95 % interval,
//!   judged by the rig's own trend rule (`barrage_core::trend`): a controller whose memory
//!   grows with the run's length shows as rising; and its peak;
//! - snapshot lag: per interval, from its end to the merge of its last snapshot (the
//!   controller's `interval closed` debug line), median and max;
//! - liveness: 1 % of the workers go silent (stream open, nothing sent) and 1 % are killed
//!   (stream dropped) at the same interval; how many intervals until the silent ones are
//!   dropped and until the survivors get their `Reassign`.
//!
//! The worker's side (CPU to cut and encode one snapshot) is the `snapshot_cost` bench.
//!
//! `cargo bench -p barrage-controller --bench fleet [-- SECONDS N...]` (default 60 s;
//! 100 300 1000); `BARRAGE_BIN=path/to/barrage` runs another build's controller (the
//! previous build's, for a side-by-side figure).
use barrage_controller::coordinator::simulate::{
    realistic_snapshot, run_worker, Fate, SimConfig, SimReport, Template,
};
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;
use common::{field, median, proc_cpu_s, proc_kib, START, TOKEN};

const BARRAGE: &str = env!("CARGO_BIN_EXE_barrage");
/// Stage time left out of the RSS slope: joins, the first intervals, buffers reaching
/// their working size.
const WARMUP_S: u64 = 10;

fn now_us() -> i64 {
    barrage_controller::coordinator::clock::now_us()
}

/// The controller and the snapshot lags it logged: (interval, workers merged, lag ms).
struct Controller {
    ctl: common::Controller,
    lags: Arc<Mutex<Vec<(u64, u64, f64)>>>,
}

fn controller(dir: &std::path::Path, n: usize, seconds: u64) -> (Controller, String) {
    let plan = format!("name = \"fleet\"\ninterval = \"1s\"\ngraceful_stop = \"5s\"\n[scenario]\nexecutor = \"constant-vus\"\nvus = {n}\nduration = \"{seconds}s\"\n");
    let extra = [
        "--expect-workers".to_string(),
        n.to_string(),
        "--join-timeout".into(),
        "120s".into(),
    ];
    let (ctl, addr, err) = common::start(
        BARRAGE,
        dir,
        &plan,
        &extra,
        "warn,barrage_controller::coordinator::hub=debug,barrage_controller::coordinator::roster=info",
    );
    let lags = Arc::new(Mutex::new(Vec::new()));
    let l = lags.clone();
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            if line.contains("interval closed") {
                let seq = field(&line, "seq").and_then(|x| x.parse().ok());
                let w = field(&line, "workers").and_then(|x| x.parse().ok());
                let lag = field(&line, "lag_ms").and_then(|x| x.parse().ok());
                if let (Some(seq), Some(w), Some(lag)) = (seq, w, lag) {
                    l.lock().unwrap().push((seq, w, lag));
                }
            } else if line.contains("silence limit reached") {
                let heard = field(&line, "heard_unix_us").and_then(|x| x.parse().ok());
                let silent = field(&line, "silent_ms").and_then(|x| x.parse().ok());
                let late = field(&line, "late_ms").and_then(|x| x.parse().ok());
                if let (Some(heard), Some(silent), Some(late)) = (heard, silent, late) {
                    SILENCES.lock().unwrap().push(Silence {
                        heard_us: heard,
                        silent_ms: silent,
                        late_ms: late,
                    });
                }
            } else if line.contains("segments rebalanced") {
                if let Some(at) = field(&line, "sent_unix_us").and_then(|x| x.parse().ok()) {
                    REBALANCED.lock().unwrap().push(at);
                }
            } else if line.contains("worker lost") || line.contains("stalled") {
                // losses and the controller's own stalls, as they happen
                if LOST_SEEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 12 {
                    eprintln!("  controller: {}", line.trim());
                }
            } else if line.contains("start sent") {
                eprintln!("  controller: {}", line.trim());
                if let Some(at) = field(&line, "start_at_unix_us").and_then(|x| x.parse().ok()) {
                    *START.lock().unwrap() = Some(at);
                }
            }
        }
    });
    (Controller { ctl, lags }, addr)
}

fn fleet(n: usize, seconds: u64) {
    *START.lock().unwrap() = None;
    SILENCES.lock().unwrap().clear();
    REBALANCED.lock().unwrap().clear();
    let dir = tempfile::tempdir().unwrap();
    let (mut ctl, addr) = controller(dir.path(), n, seconds);
    let pid = ctl.ctl.child.id();
    let cfg = Arc::new(SimConfig {
        controller: format!("http://{addr}"),
        token: Some(TOKEN.into()),
        connect_timeout: Duration::from_secs(60),
    });
    let templates: Vec<Arc<Template>> = (0..16)
        .map(|i| Arc::new(Template::new(&realistic_snapshot(i)).unwrap()))
        .collect();
    let lose = (n / 100).max(1);
    let lose_at = seconds / 3;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cpu_rss = Arc::new(Mutex::new(None));
    let probe = cpu_rss.clone();
    let reports: Vec<(Fate, SimReport)> = rt.block_on(async {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let fate = if i < lose {
                    Fate::Silent { after_seq: lose_at }
                } else if i < 2 * lose {
                    Fate::Killed { after_seq: lose_at }
                } else {
                    Fate::Normal
                };
                let t = templates[i % templates.len()].clone();
                let cfg = cfg.clone();
                tokio::spawn(async move {
                    let r = run_worker(cfg, format!("sim-{i}"), t, fate, Duration::from_secs(300))
                        .await
                        .unwrap_or_else(|e| panic!("sim-{i}: {e}"));
                    (fate, r)
                })
            })
            .collect();
        // the controller's CPU and memory over the steady part: from 2 s after the start
        // (every worker is streaming) to 2 s before the end
        tokio::spawn(async move {
            let started = common::stage_zero().await;
            let at = |s: u64| {
                let wait = (started + s as i64 * 1_000_000 - now_us()).max(0) as u64;
                tokio::time::sleep(Duration::from_micros(wait))
            };
            at(2).await;
            let (c0, t0) = (proc_cpu_s(pid), Instant::now());
            // RSS once a second over the steady part: (stage time s, KiB)
            let mut rss = Vec::new();
            for s in 2..seconds - 2 {
                at(s).await;
                rss.push((s as f64, proc_kib(pid, "VmRSS:") as f64));
            }
            at(seconds - 2).await;
            let (c1, t1) = (proc_cpu_s(pid), Instant::now());
            let hwm = proc_kib(pid, "VmHWM:");
            *probe.lock().unwrap() = Some(((c1 - c0) / (t1 - t0).as_secs_f64(), rss, hwm));
        });
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let code = ctl.ctl.child.wait().ok().and_then(|s| s.code());
    let start_at = reports
        .iter()
        .find_map(|(_, r)| r.start_at_us)
        .expect("a start");
    let last_join = reports
        .iter()
        .filter_map(|(_, r)| r.welcomed_us)
        .max()
        .unwrap();
    let before = reports
        .iter()
        .filter(|(_, r)| r.start_at_us == Some(start_at) && r.start_received_us < Some(start_at))
        .count();
    let latest_start_msg = reports
        .iter()
        .filter_map(|(_, r)| r.start_received_us)
        .max()
        .unwrap();
    let (cpu, rss, hwm) = cpu_rss.lock().unwrap().take().unwrap_or_default();
    let memory = rss_after_warmup(&rss, n);
    let lags = ctl.lags.lock().unwrap().clone();
    let mut steady: Vec<f64> = lags
        .iter()
        .filter(|(seq, _, _)| *seq < lose_at || *seq > lose_at + 4)
        .map(|x| x.2)
        .collect();
    let max_lag = steady.iter().cloned().fold(f64::NAN, f64::max);
    let full = lags
        .iter()
        .filter(|(_, w, _)| *w as usize >= n - 2 * lose)
        .count();
    // liveness
    let last_of = |want: fn(&Fate) -> bool| -> Vec<&SimReport> {
        reports
            .iter()
            .filter(|(f, _)| want(f))
            .map(|(_, r)| r)
            .collect()
    };
    let silent = last_of(|f| matches!(f, Fate::Silent { .. }));
    let killed = last_of(|f| matches!(f, Fate::Killed { .. }));
    let normal = last_of(|f| matches!(f, Fate::Normal));
    let went_quiet = silent.iter().filter_map(|r| r.last_sent_us).max().unwrap();
    let killed_at = killed.iter().filter_map(|r| r.ended_us).max().unwrap();
    let silent_dropped = silent.iter().filter_map(|r| r.ended_us).max().unwrap_or(0);
    let reassigns: Vec<i64> = normal
        .iter()
        .flat_map(|r| r.reassigned_us.iter().copied())
        .collect();
    let after_kill = reassigns
        .iter()
        .filter(|t| **t >= killed_at)
        .min()
        .copied()
        .unwrap_or(0);
    // the silent ones' rebalancing: after the killed ones' (which follows their kill
    // within milliseconds, in the same interval), not after the silent ones saw their
    // stream end: on a small fleet the survivors can have it first
    let after_silent = reassigns
        .iter()
        .filter(|t| **t >= went_quiet + 1_000_000)
        .max()
        .copied()
        .unwrap_or(0);
    let iv = |us: i64| us as f64 / 1e6;
    println!(
        "N={n:>5}  join→start {:.2} s (Start to the last worker {:.2} s before t0; {before}/{n} before t0)  \
         merge CPU {:.1} % of a core  RSS {memory} (peak {:.1} MiB)  \
         snapshot lag median {:.1} ms max {:.1} ms ({full}/{} intervals complete)  \
         silent dropped after {:.2} iv, rebalanced after {:.2} iv; killed rebalanced after {:.2} iv  exit {code:?}",
        iv(start_at - last_join),
        iv(start_at - latest_start_msg),
        cpu * 100.0,
        hwm as f64 / 1024.0,
        median(&mut steady),
        max_lag,
        lags.len(),
        iv(silent_dropped - went_quiet),
        iv(after_silent - went_quiet),
        iv(after_kill - killed_at),
    );
    liveness_parts(went_quiet, silent_dropped, after_silent);
}

/// Where the silent workers' time to be dropped goes: their last snapshot sent (the
/// simulated worker's clock) → its arrival stamped by the controller's session → the
/// controller's drop (its own figure: silence at the check against its deadline,
/// `liveness::controller_gives_up`, and how late the check ran) → the drop seen by the simulated worker (its
/// stream ending); and the rebalancing that follows, as the controller handed it out and as
/// the last survivor received it. The bench's interval is 1 s.
fn liveness_parts(went_quiet: i64, seen_dropped: i64, last_reassign: i64) {
    let sil = SILENCES.lock().unwrap().clone();
    let rebalanced = REBALANCED.lock().unwrap().clone();
    if sil.is_empty() {
        println!("  liveness: the controller logged no silent worker");
        return;
    }
    let lost_at = |s: &Silence| s.heard_us + (s.silent_ms * 1e3) as i64;
    let fold = |f: &dyn Fn(&Silence) -> f64| sil.iter().map(f).fold(f64::NAN, f64::max);
    let stamped = sil.iter().map(|s| s.heard_us).max().unwrap();
    let lost = sil.iter().map(lost_at).max().unwrap();
    // per silent worker: the first rebalancing after its drop, from its stamp
    let ctl_rebalanced = fold(&|s| {
        rebalanced
            .iter()
            .filter(|t| **t >= lost_at(s))
            .min()
            .map_or(f64::NAN, |t| (t - s.heard_us) as f64 / 1e6)
    });
    println!(
        "  liveness ({} silent): worker's view {:.2} iv = last sent → controller's stamp {:.0} ms \
         + controller's silence at the drop {:.3} iv (deadline {:.1}; check {:.1} ms past it, max) \
         + drop → stream end seen {:.0} ms; rebalancing: the controller handed out the last \
         Reassign {:.3} iv after the stamp, the last survivor had it {:.2} iv after the last send",
        sil.len(),
        (seen_dropped - went_quiet) as f64 / 1e6,
        (stamped - went_quiet) as f64 / 1e3,
        fold(&|s| s.silent_ms) / 1e3,
        barrage_core::liveness::controller_gives_up(Duration::from_secs(1)).as_secs_f64(),
        fold(&|s| s.late_ms),
        (seen_dropped - lost) as f64 / 1e3,
        ctl_rebalanced,
        (last_reassign - went_quiet) as f64 / 1e6,
    );
}

/// The controller's "silence limit reached" line: when the worker's last message arrived
/// (its session's stamp, µs since the Unix epoch), how long it had been silent when the
/// controller dropped it, and how far past the deadline that check ran.
#[derive(Debug, Clone, Copy)]
struct Silence {
    heard_us: i64,
    silent_ms: f64,
    late_ms: f64,
}
static SILENCES: Mutex<Vec<Silence>> = Mutex::new(Vec::new());
/// "segments rebalanced": when the last `Reassign` was handed to the streams.
static REBALANCED: Mutex<Vec<i64>> = Mutex::new(Vec::new());
static LOST_SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The controller's RSS after warm-up: its level (median), per worker, and its slope in
/// MiB per minute with the 95 % interval and the rig's verdict (`barrage_core::trend`:
/// rising when the interval excludes zero and the drift over the window is at least
/// `MIN_DRIFT` of the mean).
fn rss_after_warmup(samples: &[(f64, f64)], n: usize) -> String {
    let after: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|(s, _)| *s >= WARMUP_S as f64)
        .collect();
    let first = samples.first().map_or(f64::NAN, |s| s.1 / 1024.0);
    let Some(f) = barrage_core::trend::fit(&after) else {
        return format!("{first:.1} MiB at 2 s; too short a run for a slope after {WARMUP_S} s");
    };
    let mut kib: Vec<f64> = after.iter().map(|p| p.1).collect();
    let level = median(&mut kib);
    let span = after.last().unwrap().0 - after[0].0;
    let matters = (f.slope * span).abs() >= barrage_core::trend::MIN_DRIFT * f.mean.abs();
    let verdict = if f.low > 0.0 && matters {
        "rising"
    } else if f.high < 0.0 && matters {
        "falling"
    } else {
        "flat"
    };
    let per_min = |kib_per_s: f64| kib_per_s * 60.0 / 1024.0;
    format!(
        "{first:.1} MiB at 2 s, after {WARMUP_S} s {:.1} MiB ({:.1} KiB/worker), slope {:+.2} MiB/min [{:+.2}, {:+.2}] {verdict}",
        level / 1024.0,
        level / n as f64,
        per_min(f.slope),
        per_min(f.low),
        per_min(f.high),
    )
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = args.first().copied().unwrap_or(60).max(8);
    let sizes: Vec<usize> = if args.len() > 1 {
        args[1..].iter().map(|&n| n as usize).collect()
    } else {
        vec![100, 300, 1000]
    };
    for n in sizes {
        fleet(n, seconds);
    }
}
