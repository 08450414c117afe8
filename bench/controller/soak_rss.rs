//! A soak's controller process over many intervals: a real `barrage controller --soak`
//! (the shipped binary, its allocator included) with checkpoints on, fed by a few simulated
//! workers (`barrage_controller::coordinator::simulate`, real gRPC streams) that send a
//! realistic 100-series snapshot every interval, at the plan's shortest interval so that
//! minutes of wall time hold hours' worth of intervals.
//!
//! Why: `soak_memory` shows the controller's per-interval structures bounded over a day of
//! intervals, but not the process (allocator retention, gRPC buffers, checkpoints' transient
//! heap). This runs the process and samples its RSS every second; after warm-up it prints
//! the RSS per hour-equivalent (3,600 intervals, an hour at 1 s intervals) and the
//! least-squares slope per hour-equivalent with its 95 % interval, judged by the rig's own
//! trend rule (`barrage_core::trend`).
//!
//! The time series keeps a window of intervals whole and downsamples what is older
//! (`barrage_core::timeseries`: a 360th of the window, then, past six windows, a 60th). The
//! bench compresses that window with the interval (`--full-resolution` = WINDOW intervals,
//! 3,600 by default: 6 min at 100 ms), so an hour-equivalent (h-eq) is one window and the
//! run goes through the ladder's tiers as a run of 1 s intervals does in hours: its rows
//! grow for six h-eq and are bounded after. The bench prints the rows' bytes (replayed with
//! the same ladder) and the slopes with them taken out, after warm-up and again once the
//! ladder is full.
//!
//! Checkpoints make the RSS a sawtooth; the bench also fits each checkpoint period's lowest
//! reading (what live data holds) and its highest (a checkpoint's transient heap on top).
//!
//! `cargo bench -p barrage-controller --bench soak_rss [-- SECONDS WORKERS INTERVAL_MS
//! CHECKPOINT_S WINDOW]` (default 600 s, 4 workers, 100 ms, a checkpoint every 60 intervals,
//! a window of 3,600 intervals);
//! `SOAK_RSS_CSV=path` writes every sample; `BARRAGE_BIN=path` runs another build's
//! controller. A controller built with `--features heap-count` logs its live heap (bytes
//! allocated and not freed) once a second; the bench then samples it beside the RSS and fits
//! it too, which tells a leak (the live heap rises) from allocator retention (only the RSS
//! does).
use barrage_controller::coordinator::simulate::{
    realistic_snapshot, run_worker, Fate, SimConfig, Template,
};
use barrage_core::timeseries::{Ladder, TimePoint, TimeSeries};
use std::io::BufRead;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "common.rs"]
mod common;
use common::{median, proc_kib, Controller, START, TOKEN};

const BARRAGE: &str = env!("CARGO_BIN_EXE_barrage");
/// The ladder's window in intervals by default: an hour at 1 s intervals.
const WINDOW: u64 = 3600;
/// The ladder is full (its rows bounded) after this many windows.
const LADDER_FULL_H_EQ: f64 = 6.0;
/// The shortest warm-up, in intervals: the process's RSS floor settles over its first few
/// hundred intervals (bench/RESULTS.md), so a short run's tenth would fit that rise too.
const MIN_WARMUP_INTERVALS: f64 = 600.0;

/// Intervals the controller closed (its `interval closed` debug line) and the last one's
/// sequence number.
static CLOSED: AtomicU64 = AtomicU64::new(0);
/// The controller's live heap in bytes, from its last `heap live_bytes=` line (a
/// `heap-count` build); -1 until one is read.
static HEAP: AtomicI64 = AtomicI64::new(-1);

struct Args {
    seconds: u64,
    workers: usize,
    interval_ms: u64,
    checkpoint_s: f64,
    /// Intervals kept whole (`--full-resolution`): the unit of the figures, an h-eq.
    window: u64,
}

fn controller(dir: &std::path::Path, a: &Args) -> (Controller, String) {
    let plan = format!(
        "name = \"soak-rss\"\ninterval = \"{}ms\"\ngraceful_stop = \"5s\"\n[scenario]\n\
         executor = \"constant-vus\"\nvus = {}\nduration = \"{}s\"\n",
        a.interval_ms, a.workers, a.seconds
    );
    let extra = [
        "--expect-workers".to_string(),
        a.workers.to_string(),
        "--join-timeout".into(),
        "60s".into(),
        "--soak".into(),
        "--checkpoint-every".into(),
        format!("{}ms", a.checkpoint_s * 1e3),
        "--full-resolution".into(),
        format!("{}ms", a.window * a.interval_ms),
    ];
    let (ctl, addr, err) = common::start(
        BARRAGE,
        dir,
        &plan,
        &extra,
        "warn,barrage_controller::coordinator::hub=debug,barrage_controller::heap=info",
    );
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            if line.contains("interval closed") {
                CLOSED.fetch_add(1, Ordering::Relaxed);
            } else if let Some(v) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("live_bytes="))
                .and_then(|x| x.parse().ok())
            {
                HEAP.store(v, Ordering::Relaxed);
            } else if line.contains("start sent") {
                let at = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("start_at_unix_us="))
                    .and_then(|x| x.parse().ok());
                *START.lock().unwrap() = at;
            } else if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("  controller: {}", line.trim());
            }
        }
    });
    (ctl, addr)
}

/// One sample: stage time (s), intervals closed so far, VmRSS, RssAnon and the live heap
/// (KiB; the heap only from a `heap-count` build).
#[derive(Clone, Copy)]
struct Sample {
    t: f64,
    closed: u64,
    rss: f64,
    anon: f64,
    heap: Option<f64>,
}

/// One checkpoint period's samples: its start (s), lowest and highest RssAnon (KiB), the
/// lowest live heap (KiB, when counted), and the intervals closed at its last sample.
struct Period {
    t: f64,
    low: f64,
    high: f64,
    heap_low: f64,
    closed: u64,
}

/// The time series's own bytes (its `Vec`'s capacity) after each count of intervals,
/// replayed with the controller's ladder: `kib[n]` after `n` intervals.
struct Rows {
    kib: Vec<f64>,
}

impl Rows {
    fn replay(a: &Args, intervals: u64) -> Rows {
        let mut ts = TimeSeries {
            interval_ms: a.interval_ms as u32,
            ladder: Ladder::new(Duration::from_millis(a.window * a.interval_ms)),
            ..Default::default()
        };
        let p = TimePoint::from_interval(0, &Default::default(), 1);
        let mut kib = vec![0.0];
        for seq in 0..intervals {
            ts.push(TimePoint {
                seq: seq as u32,
                ..p
            });
            kib.push(ts.heap_bytes() as f64 / 1024.0);
        }
        Rows { kib }
    }

    fn at(&self, closed: u64) -> f64 {
        self.kib[(closed as usize).min(self.kib.len() - 1)]
    }
}

fn verdict(f: &barrage_core::trend::Fit, span: f64) -> &'static str {
    let matters = (f.slope * span).abs() >= barrage_core::trend::MIN_DRIFT * f.mean.abs();
    if f.low > 0.0 && matters {
        "rising"
    } else if f.high < 0.0 && matters {
        "falling"
    } else {
        "flat"
    }
}

/// The slope of `pts` ((hour-equivalent, KiB)) in MiB per hour-equivalent, its interval
/// and verdict.
fn slope_line(what: &str, pts: &[(f64, f64)]) -> String {
    let Some(f) = barrage_core::trend::fit(pts) else {
        return format!("{what}: too few points for a slope");
    };
    let span = pts.last().unwrap().0 - pts[0].0;
    let mib = |k: f64| k / 1024.0;
    format!(
        "{what}: mean {:.1} MiB, slope {:+.3} MiB/h-eq [{:+.3}, {:+.3}] {} (drift over the fit {:+.2} MiB, {:+.2} % of the mean)",
        mib(f.mean),
        mib(f.slope),
        mib(f.low),
        mib(f.high),
        verdict(&f, span),
        mib(f.slope * span),
        f.slope * span / f.mean * 100.0,
    )
}

fn run(a: &Args) {
    let dir = tempfile::tempdir().unwrap();
    let (mut ctl, addr) = controller(dir.path(), a);
    let pid = ctl.child.id();
    let cfg = Arc::new(SimConfig {
        controller: format!("http://{addr}"),
        token: Some(TOKEN.into()),
        connect_timeout: Duration::from_secs(30),
    });
    let templates: Vec<Arc<Template>> = (0..a.workers as u64)
        .map(|i| Arc::new(Template::new(&realistic_snapshot(i)).unwrap()))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let give_up = Duration::from_secs(a.seconds + 120);
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let probe = samples.clone();
    let seconds = a.seconds;
    let sent: u64 = rt.block_on(async {
        let tasks: Vec<_> = templates
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let (cfg, t) = (cfg.clone(), t.clone());
                tokio::spawn(async move {
                    run_worker(cfg, format!("sim-{i}"), t, Fate::Normal, give_up)
                        .await
                        .unwrap_or_else(|e| panic!("sim-{i}: {e}"))
                })
            })
            .collect();
        // RSS once a second of stage time, from the start to the end of the load
        tokio::spawn(async move {
            let started = common::stage_zero().await;
            for s in 0..seconds {
                let due = started + s as i64 * 1_000_000;
                let wait = (due - barrage_controller::coordinator::clock::now_us()).max(0);
                tokio::time::sleep(Duration::from_micros(wait as u64)).await;
                probe.lock().unwrap().push(Sample {
                    t: s as f64,
                    closed: CLOSED.load(Ordering::Relaxed),
                    rss: proc_kib(pid, "VmRSS:") as f64,
                    anon: proc_kib(pid, "RssAnon:") as f64,
                    heap: Some(HEAP.load(Ordering::Relaxed))
                        .filter(|&b| b >= 0)
                        .map(|b| b as f64 / 1024.0),
                });
            }
        });
        let mut sent = 0;
        for t in tasks {
            sent += t.await.unwrap().snapshots;
        }
        sent
    });
    let hwm = proc_kib(pid, "VmHWM:");
    let code = ctl.child.wait().ok().and_then(|s| s.code());
    let samples = samples.lock().unwrap().clone();
    report(a, &samples, sent, hwm, code);
}

fn report(a: &Args, samples: &[Sample], sent: u64, hwm: u64, code: Option<i32>) {
    let per_s = 1000.0 / a.interval_ms as f64;
    let hour_eq = a.window as f64;
    let planned = a.seconds as f64 * per_s;
    let closed = CLOSED.load(Ordering::Relaxed);
    println!(
        "interval {} ms, {} workers, {} s: {closed} intervals closed of {planned:.0} planned \
         ({:.2} h-eq of {} intervals: the time series keeps {} ms whole), {sent} snapshots \
         sent, checkpoint every {} s ({:.0} intervals), exit {code:?}, peak RSS {:.1} MiB",
        a.interval_ms,
        a.workers,
        a.seconds,
        closed as f64 / hour_eq,
        a.window,
        a.window * a.interval_ms,
        a.checkpoint_s,
        a.checkpoint_s * per_s,
        hwm as f64 / 1024.0,
    );
    let rows = Rows::replay(a, closed.max(planned as u64) + 1);
    let h = |s: &Sample| s.t * per_s / hour_eq;
    // warm-up: a tenth of the run, as `--soak-warmup` defaults to, and at least
    // [`MIN_WARMUP_INTERVALS`]
    let warm = (a.seconds as f64 / 10.0).max(MIN_WARMUP_INTERVALS / per_s);
    let after: Vec<&Sample> = samples.iter().filter(|s| s.t >= warm).collect();
    if after.is_empty() {
        eprintln!("soak_rss: no sample after the warm-up ({warm:.0} s): give SECONDS over it");
        std::process::exit(2);
    }
    // per hour-equivalent (and per tenth of one, for short runs): median, min and max
    let block = if planned >= 2.0 * hour_eq { 1.0 } else { 0.1 };
    println!("  after warm-up ({warm:.0} s):  block of {block} h-eq  VmRSS median [min, max] MiB  RssAnon median  live heap median  time series rows' KiB");
    let mut b = (h(after[0]) / block).floor();
    loop {
        let mut blk: Vec<&Sample> = after
            .iter()
            .copied()
            .filter(|s| (h(s) / block).floor() == b)
            .collect();
        if blk.is_empty() {
            break;
        }
        let mut rss: Vec<f64> = blk.iter().map(|s| s.rss / 1024.0).collect();
        let mut anon: Vec<f64> = blk.iter().map(|s| s.anon / 1024.0).collect();
        let mut heap: Vec<f64> = blk
            .iter()
            .filter_map(|s| s.heap)
            .map(|k| k / 1024.0)
            .collect();
        let heap = if heap.is_empty() {
            "—".to_string()
        } else {
            format!("{:.1}", median(&mut heap))
        };
        let (lo, hi) = rss
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, x), v| {
                (l.min(*v), x.max(*v))
            });
        blk.sort_by_key(|s| s.closed);
        println!(
            "    {:>5.1}–{:<5.1} h-eq  {:>7.1} [{:.1}, {:.1}]  {:>7.1}  {:>7}  {:>7.0}",
            b * block,
            (b + 1.0) * block,
            median(&mut rss),
            lo,
            hi,
            median(&mut anon),
            heap,
            rows.at(blk.last().unwrap().closed),
        );
        b += 1.0;
    }
    fits(a, &after, &rows, "after warm-up");
    let full: Vec<&Sample> = after
        .iter()
        .copied()
        .filter(|s| h(s) >= LADDER_FULL_H_EQ)
        .collect();
    if h(after.last().unwrap()) >= LADDER_FULL_H_EQ + 2.0 {
        fits(a, &full, &rows, "once the ladder is full (rows bounded)");
    }
    if let Ok(path) = std::env::var("SOAK_RSS_CSV") {
        let mut csv = String::from("t_s,closed,vmrss_kib,rssanon_kib,rows_kib,heap_kib\n");
        for s in samples {
            csv += &format!(
                "{},{},{},{},{},{}\n",
                s.t,
                s.closed,
                s.rss,
                s.anon,
                rows.at(s.closed),
                s.heap.map_or(String::new(), |k| k.to_string()),
            );
        }
        std::fs::write(&path, csv).unwrap();
    }
    // the soak test's floor rule: the last third's lowest reading against the first third's
    let third = after.len() / 3;
    let floor = |s: &[&Sample]| s.iter().map(|x| x.rss).fold(f64::INFINITY, f64::min);
    let (early, late) = (floor(&after[..third]), floor(&after[2 * third..]));
    println!(
        "  floor (lowest VmRSS) first third {:.1} MiB → last third {:.1} MiB ({:+.1} %)",
        early / 1024.0,
        late / 1024.0,
        (late / early - 1.0) * 100.0
    );
}

/// The slopes over `part` (in MiB per h-eq): the whole RSS, the anonymous part less the
/// rows, and per checkpoint period its lowest reading less the rows (what live data holds)
/// and its highest (a checkpoint's transient heap on top); with a counted heap, the live
/// heap less the rows and its lowest reading per checkpoint period.
fn fits(a: &Args, part: &[&Sample], rows: &Rows, what: &str) {
    let per_s = 1000.0 / a.interval_ms as f64;
    let h = |t: f64| t * per_s / a.window as f64;
    println!(
        "  {what} ({:.1}–{:.1} h-eq):",
        h(part[0].t),
        h(part[part.len() - 1].t)
    );
    let pts = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        part.iter().map(|s| (h(s.t), f(s))).collect()
    };
    println!("    {}", slope_line("VmRSS", &pts(&|s| s.rss)));
    println!("    {}", slope_line("RssAnon", &pts(&|s| s.anon)));
    println!(
        "    {}",
        slope_line(
            "RssAnon less the time series's rows",
            &pts(&|s| s.anon - rows.at(s.closed))
        )
    );
    let counted = part.iter().all(|s| s.heap.is_some());
    if counted {
        println!(
            "    {}",
            slope_line(
                "live heap less the time series's rows",
                &pts(&|s| s.heap.unwrap_or(0.0) - rows.at(s.closed))
            )
        );
    }
    let period = a.checkpoint_s.max(1.0);
    let mut windows: Vec<Period> = Vec::new();
    for s in part {
        let w = (s.t / period).floor();
        match windows.last_mut() {
            Some(last) if (last.t / period).floor() == w => {
                last.low = last.low.min(s.anon);
                last.high = last.high.max(s.anon);
                last.heap_low = last.heap_low.min(s.heap.unwrap_or(0.0));
                last.closed = s.closed;
            }
            _ => windows.push(Period {
                t: s.t,
                low: s.anon,
                high: s.anon,
                heap_low: s.heap.unwrap_or(0.0),
                closed: s.closed,
            }),
        }
    }
    let wpts = |f: &dyn Fn(&Period) -> f64| -> Vec<(f64, f64)> {
        windows.iter().map(|w| (h(w.t), f(w))).collect()
    };
    println!(
        "    {}",
        slope_line(
            "RssAnon floor per checkpoint period, less the rows",
            &wpts(&|w| w.low - rows.at(w.closed))
        )
    );
    println!(
        "    {}",
        slope_line("RssAnon peak per checkpoint period", &wpts(&|w| w.high))
    );
    if counted {
        println!(
            "    {}",
            slope_line(
                "live heap floor per checkpoint period, less the rows",
                &wpts(&|w| w.heap_low - rows.at(w.closed))
            )
        );
    }
}

fn main() {
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let a = Args {
        seconds: args.first().map_or(600, |&s| s as u64).max(30),
        workers: args.get(1).map_or(4, |&n| n as usize).max(1),
        interval_ms: args.get(2).map_or(100, |&i| i as u64),
        checkpoint_s: 0.0,
        window: args.get(4).map_or(WINDOW, |&w| w as u64).max(360),
    };
    let a = Args {
        checkpoint_s: args
            .get(3)
            .copied()
            .unwrap_or(60.0 * a.interval_ms as f64 / 1000.0),
        ..a
    };
    run(&a);
}
