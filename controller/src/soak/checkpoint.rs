//! Checkpoints: the closed part of a run on disk, so that neither a crash of the controller
//! nor a kill for good loses more than one checkpoint period of a soak.
//!
//! A run with `--soak` gets a folder `{results}/{base}.checkpoint/` (numbered like
//! summaries when it exists) holding two files, each written atomically (temp + rename):
//!
//! | file           | what                                                                |
//! |----------------|---------------------------------------------------------------------|
//! | `state.json`   | [`State`]: the merged sinks of the closed intervals (HDR histograms exact, as wire snapshots in base64), per-stage data, the time series, each worker's identity, segment and settled share |
//! | `summary.json` | a valid partial summary of the same data (`end_reason` says it is partial), which `barrage summarize` / `report` read like any other |
//!
//! Only *closed* intervals go in (see `crate::merge`): whatever workers sent for later
//! intervals is theirs to resend when they rejoin a restarted controller (`--resume`), so
//! resuming neither double-counts nor, within the workers' rejoin buffer, loses anything.
//! A successful run removes its checkpoint folder once its summary is written.
use crate::merge::{Settled, WorkerTally};
use barrage_core::stages::{StageBook, StageData};
use barrage_core::timeseries::{TimeSeries, TimeSeriesDoc};
use barrage_core::Snapshot;
use barrage_proto::pb;
use base64::Engine as _;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// The layout of `state.json`; a controller refuses another by name.
pub const FORMAT: u32 = 1;
pub const STATE_FILE: &str = "state.json";
pub const SUMMARY_FILE: &str = "summary.json";

/// Why a checkpoint cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("--resume {}: {source}; give the *.checkpoint folder the first run printed", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--resume {}: not a checkpoint ({why}); give the *.checkpoint folder the first run printed", path.display())]
    Decode { path: PathBuf, why: String },
    #[error("--resume {}: checkpoint format {found}, this barrage writes {FORMAT}; resume with the barrage release that wrote it", path.display())]
    Format { path: PathBuf, found: u32 },
    #[error("--resume {}: the checkpoint is of plan {theirs}, the flags give plan {ours}; give the same plan flags as the first run", path.display())]
    Plan {
        path: PathBuf,
        theirs: String,
        ours: String,
    },
}

/// One worker of a checkpointed run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerState {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub core: i32,
    pub version: String,
    pub name: String,
    /// Its segment, a wire `Segment` in base64.
    pub segment: Option<String>,
    pub offset_us: i64,
    pub rtt_us: i64,
    /// Its share of the closed intervals.
    pub snapshots: u64,
    pub last_seq: Option<u64>,
    pub iterations: f64,
    pub requests: f64,
    pub done: Option<u64>,
    /// Why it was lost, if it was.
    pub lost: Option<String>,
}

/// One stage's merged data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageState {
    pub intervals: u32,
    pub vus_min: u64,
    pub vus_max: u64,
    pub vus_sum: u64,
    /// A wire `Snapshot` in base64.
    pub snapshot: String,
}

/// `state.json`: everything a restarted controller needs to continue the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: u32,
    pub plan_hash: String,
    /// Stage time 0, µs since the Unix epoch (the `Start` the workers ran by).
    pub start_unix_us: i64,
    /// When the checkpoint was taken.
    pub written_unix_us: i64,
    /// Every interval up to this one is in `total`.
    pub closed_through: Option<u64>,
    pub late_snapshots: u64,
    /// The cumulative sinks, a wire `Snapshot` in base64.
    pub total: String,
    pub timeseries: TimeSeriesDoc,
    pub stages: Vec<StageState>,
    pub workers: Vec<WorkerState>,
}

fn b64(bytes: Vec<u8>) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn snapshot_b64(s: &Snapshot) -> Result<String, String> {
    let pb = barrage_proto::snapshot_to_pb(s).map_err(|e| e.to_string())?;
    Ok(b64(pb.encode_to_vec()))
}

fn snapshot_from_b64(text: &str) -> Result<Snapshot, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| e.to_string())?;
    let pb = pb::Snapshot::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
    barrage_proto::snapshot_from_pb(&pb).map_err(|e| e.to_string())
}

/// Encodes a segment for [`WorkerState::segment`].
pub fn segment_b64(s: barrage_core::Segment) -> String {
    b64(barrage_proto::segment_to_pb(s).encode_to_vec())
}

/// Decodes [`WorkerState::segment`].
pub fn segment_from_b64(text: &str) -> Result<barrage_core::Segment, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| e.to_string())?;
    let pb = pb::Segment::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
    barrage_proto::segment_from_pb(Some(&pb)).map_err(|e| e.to_string())
}

impl State {
    /// The state of a run now: its settled part, series, stages and workers.
    pub fn capture(
        plan_hash: String,
        start_unix_us: i64,
        settled: &Settled,
        ts: &TimeSeries,
        stages: &StageBook,
        workers: Vec<WorkerState>,
    ) -> Result<State, String> {
        Ok(State {
            format: FORMAT,
            plan_hash,
            start_unix_us,
            written_unix_us: crate::coordinator::clock::now_us(),
            closed_through: settled.closed_through,
            late_snapshots: settled.late,
            total: snapshot_b64(&settled.total)?,
            timeseries: ts.to_doc(),
            stages: stages
                .data
                .iter()
                .map(|d| {
                    Ok(StageState {
                        intervals: d.intervals,
                        vus_min: d.vus_min,
                        vus_max: d.vus_max,
                        vus_sum: d.vus_sum,
                        snapshot: snapshot_b64(&d.snapshot)?,
                    })
                })
                .collect::<Result<_, String>>()?,
            workers,
        })
    }

    /// Reads `dir/state.json` and checks it is of the plan `plan_hash`.
    pub fn load(dir: &Path, plan_hash: &str) -> Result<State, CheckpointError> {
        let path = dir.join(STATE_FILE);
        let state: State = read_versioned(&path, FORMAT).map_err(|e| match e {
            ReadFail::Io(source) => CheckpointError::Read {
                path: path.clone(),
                source,
            },
            ReadFail::Format(found) => CheckpointError::Format {
                path: path.clone(),
                found,
            },
            ReadFail::Decode(why) => CheckpointError::Decode {
                path: path.clone(),
                why,
            },
        })?;
        if state.plan_hash != plan_hash {
            return Err(CheckpointError::Plan {
                path,
                theirs: state.plan_hash,
                ours: plan_hash.to_string(),
            });
        }
        Ok(state)
    }

    /// The merger's settled part, the time series and the stage data back (the book
    /// `stages` is the plan's, empty).
    pub fn restore(
        &self,
        dir: &Path,
        mut stages: StageBook,
    ) -> Result<(Settled, TimeSeries, StageBook), CheckpointError> {
        let bad = |why: String| CheckpointError::Decode {
            path: dir.join(STATE_FILE),
            why,
        };
        let total = snapshot_from_b64(&self.total).map_err(|e| bad(format!("total: {e}")))?;
        if stages.data.len() != self.stages.len() {
            return Err(bad(format!(
                "{} stages, the plan has {}",
                self.stages.len(),
                stages.data.len()
            )));
        }
        for (i, (d, s)) in stages.data.iter_mut().zip(&self.stages).enumerate() {
            *d = StageData {
                snapshot: snapshot_from_b64(&s.snapshot)
                    .map_err(|e| bad(format!("stage {i}: {e}")))?,
                intervals: s.intervals,
                vus_min: s.vus_min,
                vus_max: s.vus_max,
                vus_sum: s.vus_sum,
            };
        }
        let workers: BTreeMap<String, WorkerTally> = self
            .workers
            .iter()
            .map(|w| {
                (
                    w.id.clone(),
                    WorkerTally {
                        snapshots: w.snapshots,
                        last_seq: w.last_seq,
                        iterations: w.iterations,
                        requests: w.requests,
                    },
                )
            })
            .collect();
        let settled = Settled {
            total,
            closed_through: self.closed_through,
            late: self.late_snapshots,
            workers,
        };
        Ok((settled, TimeSeries::from_doc(&self.timeseries), stages))
    }
}

/// The checkpoint folder of a new run: `{dir}/{base}.checkpoint`, or `-2`, `-3`… when it
/// exists (a folder of an earlier run is never reused).
pub fn new_dir(results_dir: &Path, plan: &barrage_core::Plan) -> std::io::Result<PathBuf> {
    let base = barrage_core::results::base_name(plan);
    for n in 1..=10_000u32 {
        let name = if n == 1 {
            format!("{base}.checkpoint")
        } else {
            format!("{base}-{n}.checkpoint")
        };
        let path = results_dir.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "10000 checkpoint folders of this run's name exist; clean the results folder",
    ))
}

/// One checkpoint as the hub hands it over: documents, not bytes (see [`Writer`]).
#[derive(Debug)]
pub struct Taken {
    pub state: State,
    pub summary: Box<barrage_core::summary::Summary>,
}

/// Encodes and writes checkpoints off the hub's thread, one at a time, each file
/// atomically: the hub builds the documents (which needs its data) and hands them over;
/// encoding them (JSON of every time-series row) needs nothing of the hub's, and the hub's
/// liveness checks and ticks wait behind whatever it does. A checkpoint that comes
/// while the previous one is still being written is skipped (the next one carries its
/// data).
#[derive(Debug, Clone)]
pub struct Writer {
    pub dir: PathBuf,
    tx: mpsc::Sender<Taken>,
}

impl Writer {
    /// A writer into `dir` (which exists); needs a tokio runtime.
    pub fn start(dir: PathBuf) -> Writer {
        let (tx, mut rx) = mpsc::channel::<Taken>(1);
        let target = dir.clone();
        tokio::spawn(async move {
            while let Some(taken) = rx.recv().await {
                let dir = target.clone();
                let wrote = tokio::task::spawn_blocking(move || {
                    let state = serde_json::to_vec(&taken.state).map_err(|e| e.to_string())?;
                    let summary =
                        serde_json::to_vec_pretty(&taken.summary).map_err(|e| e.to_string())?;
                    barrage_core::results::write_atomic(&dir.join(STATE_FILE), &state)
                        .map_err(|e| e.to_string())?;
                    barrage_core::results::write_atomic(&dir.join(SUMMARY_FILE), &summary)
                        .map_err(|e| e.to_string())
                })
                .await;
                match wrote {
                    Ok(Ok(())) => tracing::debug!(dir = %target.display(), "checkpoint written"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "checkpoint not written"),
                    Err(e) => tracing::warn!(error = %e, "checkpoint writer failed"),
                }
            }
        });
        Writer { dir, tx }
    }

    /// Queues one checkpoint.
    pub fn write(&self, taken: Taken) {
        if self.tx.try_send(taken).is_err() {
            tracing::warn!("the previous checkpoint is still being written; this one is skipped");
        }
    }

    /// Waits until what is queued is written (at most `wait`).
    pub async fn flush(&self, wait: std::time::Duration) {
        let until = tokio::time::Instant::now() + wait;
        while self.tx.capacity() < self.tx.max_capacity() && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// Why a versioned JSON file of a checkpoint folder (`state.json`, `local.json`) could not
/// be read; each file's error type names the path and the fix.
pub(crate) enum ReadFail {
    Io(std::io::Error),
    /// Its `format` is another release's.
    Format(u32),
    Decode(String),
}

/// Reads `path`, a JSON object whose `format` must be `format` (checked before the rest is
/// decoded, so another release's file says so instead of failing on a field).
pub(crate) fn read_versioned<T: serde::de::DeserializeOwned>(
    path: &Path,
    format: u32,
) -> Result<T, ReadFail> {
    let bytes = std::fs::read(path).map_err(ReadFail::Io)?;
    let found = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("format").and_then(serde_json::Value::as_u64));
    if let Some(found) = found.filter(|f| *f != u64::from(format)) {
        return Err(ReadFail::Format(found as u32));
    }
    serde_json::from_slice(&bytes).map_err(|e| ReadFail::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_core::metrics::builtin;
    use barrage_core::timeseries::TimePoint;
    use barrage_core::{MetricKind, Profile, SeriesKey};

    #[test]
    fn a_state_reads_back_as_it_was_written() {
        let plan = barrage_core::Plan::profile(Profile::Default);
        let mut total = Snapshot::default();
        for ms in 1..=200u64 {
            total.add(
                SeriesKey::with_tags(builtin::HTTP_REQ_DURATION, [("operation", "run_wait")]),
                MetricKind::Trend,
                (ms * 1000) as f64,
            );
            total.add(SeriesKey::new(builtin::HTTP_REQS), MetricKind::Counter, 1.0);
        }
        let mut stages = StageBook::new(&plan.scenario, plan.interval);
        stages.add(3, &total);
        let mut ts = TimeSeries {
            interval_ms: 1000,
            start_unix_us: 7,
            points: Vec::new(),
            ladder: Default::default(),
        };
        ts.push(TimePoint::from_interval(0, &total, 2));
        let mut workers = BTreeMap::new();
        workers.insert(
            "w1".to_string(),
            WorkerTally {
                snapshots: 4,
                last_seq: Some(3),
                iterations: 10.0,
                requests: 200.0,
            },
        );
        let settled = Settled {
            total: total.clone(),
            closed_through: Some(3),
            late: 1,
            workers,
        };
        let w = WorkerState {
            id: "w1".into(),
            host: "h".into(),
            pid: 9,
            core: -1,
            version: "0".into(),
            name: "local-1".into(),
            segment: Some(segment_b64(barrage_core::Segment::FULL)),
            offset_us: 5,
            rtt_us: 100,
            snapshots: 4,
            last_seq: Some(3),
            iterations: 10.0,
            requests: 200.0,
            done: None,
            lost: None,
        };
        let state = State::capture(plan.hash(), 7, &settled, &ts, &stages, vec![w]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bytes = serde_json::to_vec(&state).unwrap();
        barrage_core::results::write_atomic(&dir.path().join(STATE_FILE), &bytes).unwrap();
        let back = State::load(dir.path(), &plan.hash()).unwrap();
        assert_eq!(back, state);
        let (s, ts2, st2) = back
            .restore(dir.path(), StageBook::new(&plan.scenario, plan.interval))
            .unwrap();
        // the histograms exact: the same bytes on the wire
        assert_eq!(
            snapshot_b64(&s.total).unwrap(),
            snapshot_b64(&total).unwrap()
        );
        assert_eq!((s.closed_through, s.late), (Some(3), 1));
        assert_eq!(s.workers["w1"].requests, 200.0);
        assert_eq!(ts2.to_doc(), ts.to_doc());
        let i = stages.stage_of(3);
        assert_eq!(st2.data[i].intervals, 1);
        assert_eq!(
            snapshot_b64(&st2.data[i].snapshot).unwrap(),
            snapshot_b64(&stages.data[i].snapshot).unwrap()
        );
        assert_eq!(
            segment_from_b64(back.workers[0].segment.as_ref().unwrap()).unwrap(),
            barrage_core::Segment::FULL
        );
        // another plan's checkpoint is refused by name
        let e = State::load(dir.path(), "other").unwrap_err();
        assert!(e.to_string().contains("same plan flags"), "{e}");
    }
}
