//! The worker's cost per snapshot: what cutting an interval out of the registry and
//! encoding it for the wire takes, at 100 series (the fleet target's figure) and more.
//!
//! One thread fills a real `barrage_worker::registry::Registry` with an interval of
//! realistic samples (`coordinator::simulate::realistic_snapshot`: 11 operations' latency
//! trends spread over two decades, rates, counters, checks; `×M` repeats every series
//! under M values of a `shard` tag), then per round measures, on the same interval:
//! - `cut`: `Registry::cut` (the interval's sinks handed out, the registry's reset);
//! - the trend histograms encoded by `hdrhistogram`'s own V2-deflate serializer (what
//!   `snapshot_to_pb` used until the sparse encoder) and by `barrage_core::hdr::SparseEncoder`
//!   (what it uses now), in alternating order; both outputs are checked to decode alike;
//! - `snapshot_to_pb` as shipped, and the message's protobuf encoding (what tonic sends).
//!
//! Each figure is the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, so other processes on
//! a loaded machine do not inflate it) with the wall time and minor page faults beside it;
//! medians and p90 over the rounds. The allocator is mimalloc, as in the worker binary.
//!
//! `cargo bench -p barrage-controller --bench snapshot_cost [-- ROUNDS M...]` (default 200
//! rounds; M = 1 4)
use barrage_controller::coordinator::simulate::realistic_snapshot;
use barrage_core::{MetricKind, Sink, Snapshot};
use barrage_worker::registry::{Registry, SeriesId};
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Thread CPU time (ns), wall time, minor faults of this thread.
#[derive(Clone, Copy)]
struct Mark {
    cpu_ns: u64,
    wall: Instant,
    minflt: i64,
}

fn mark() -> Mark {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid pointer to a timespec
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    // SAFETY: zeroed rusage is a valid out-parameter
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD with a valid pointer
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    Mark {
        cpu_ns: ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64,
        wall: Instant::now(),
        minflt: ru.ru_minflt,
    }
}

/// One measured call: (CPU µs, wall µs, minor faults).
#[derive(Default)]
struct Figures {
    cpu: Vec<f64>,
    wall: Vec<f64>,
    faults: Vec<f64>,
}

impl Figures {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let a = mark();
        let out = f();
        let b = mark();
        self.cpu.push((b.cpu_ns - a.cpu_ns) as f64 / 1e3);
        self.wall
            .push(b.wall.duration_since(a.wall).as_secs_f64() * 1e6);
        self.faults.push((b.minflt - a.minflt) as f64);
        out
    }

    fn median(&self) -> f64 {
        quantile(&self.cpu, 0.5)
    }

    fn line(&self, what: &str) -> String {
        format!(
            "{what:<34} CPU median {:>8.1} µs  p90 {:>8.1} µs   wall median {:>8.1} µs   minor faults median {:>5.0}",
            quantile(&self.cpu, 0.5),
            quantile(&self.cpu, 0.9),
            quantile(&self.wall, 0.5),
            quantile(&self.faults, 0.5),
        )
    }
}

fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// A registry holding `m` copies of the realistic interval's series, and the samples of
/// one interval per series.
fn registry(m: usize) -> (Registry, Vec<(SeriesId, Vec<f64>)>) {
    let template = realistic_snapshot(7);
    let reg = Registry::new(&Default::default());
    let mut ids = Vec::new();
    for shard in 0..m {
        let shard = shard.to_string();
        for (key, sink) in &template.series {
            let mut tags: Vec<(&str, &str)> = key
                .tags
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            if m > 1 {
                tags.push(("shard", shard.as_str()));
            }
            let (kind, values): (MetricKind, Vec<f64>) = match sink {
                Sink::Counter(c) => (MetricKind::Counter, vec![c.sum]),
                Sink::Rate(_) => (MetricKind::Rate, vec![1.0; 40]),
                Sink::Trend(t) => (
                    MetricKind::Trend,
                    t.hist
                        .iter_recorded()
                        .flat_map(|v| {
                            std::iter::repeat_n(
                                v.value_iterated_to() as f64,
                                v.count_at_value() as usize,
                            )
                        })
                        .collect(),
                ),
                Sink::Gauge(_) => (MetricKind::Gauge, vec![1.0]),
            };
            ids.push((reg.intern(&key.metric, kind, &tags), values));
        }
    }
    (reg, ids)
}

/// The trend histograms of `s` encoded by the library's serializer, as `snapshot_to_pb`
/// did before the sparse encoder (a new serializer per histogram).
fn encode_library(s: &Snapshot) -> Vec<Vec<u8>> {
    s.series
        .values()
        .filter_map(|sink| match sink {
            Sink::Trend(t) => {
                let mut out = Vec::new();
                V2DeflateSerializer::new()
                    .serialize(&t.hist, &mut out)
                    .expect("encodes");
                Some(out)
            }
            _ => None,
        })
        .collect()
}

/// The same with the sparse encoder (one encoder reused, as the shipped code does).
fn encode_sparse(s: &Snapshot, enc: &mut barrage_core::hdr::SparseEncoder) -> Vec<Vec<u8>> {
    s.series
        .values()
        .filter_map(|sink| match sink {
            Sink::Trend(t) => {
                let mut out = Vec::new();
                enc.encode(&t.hist, &mut out).expect("encodes");
                Some(out)
            }
            _ => None,
        })
        .collect()
}

fn run(rounds: u64, m: usize) {
    let (reg, ids) = registry(m);
    let mut cut = Figures::default();
    let mut lib = Figures::default();
    let mut sparse = Figures::default();
    let mut to_pb = Figures::default();
    let mut prost_enc = Figures::default();
    let (mut lib_bytes, mut sparse_bytes, mut wire_bytes) = (0, 0, 0);
    let (mut series, mut trends) = (0, 0);
    let mut enc = barrage_core::hdr::SparseEncoder::default();
    let fill = |reg: &Registry| {
        for (id, values) in &ids {
            for v in values {
                reg.add(*id, *v);
            }
        }
    };
    // warm-up: the registry's histograms grow to the interval's range once
    for seq in 0..5 {
        fill(&reg);
        let _ = reg.cut(seq, 0, 1000);
    }
    for seq in 0..rounds {
        fill(&reg);
        let s = cut.time(|| reg.cut(seq, seq as i64 * 1_000_000, 1000));
        series = s.series.len();
        trends = s
            .series
            .values()
            .filter(|x| matches!(x, Sink::Trend(_)))
            .count();
        // alternate which encoder goes first, so neither always finds the caches warm
        let (a, b) = if seq % 2 == 0 {
            let a = lib.time(|| encode_library(&s));
            (a, sparse.time(|| encode_sparse(&s, &mut enc)))
        } else {
            let b = sparse.time(|| encode_sparse(&s, &mut enc));
            (lib.time(|| encode_library(&s)), b)
        };
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            let hx = barrage_core::sink::TrendSink::decode(x).unwrap().hist;
            let hy = barrage_core::sink::TrendSink::decode(y).unwrap().hist;
            assert_eq!(hx, hy, "both encodings decode to the same histogram");
        }
        lib_bytes = a.iter().map(Vec::len).sum::<usize>();
        sparse_bytes = b.iter().map(Vec::len).sum::<usize>();
        let wire = to_pb.time(|| barrage_proto::snapshot_to_pb(&s).unwrap());
        let bytes = prost_enc.time(|| prost::Message::encode_to_vec(&wire));
        wire_bytes = bytes.len();
    }
    println!(
        "{series} series ({m} × {}; {trends} trends), {rounds} rounds, {wire_bytes} bytes on the wire",
        series / m
    );
    println!("  {}", cut.line("Registry::cut"));
    println!("  {}", lib.line("trends, hdrhistogram V2-deflate"));
    println!("  {}", sparse.line("trends, SparseEncoder"));
    println!("  {}", to_pb.line("snapshot_to_pb (as shipped)"));
    println!("  {}", prost_enc.line("protobuf encode"));
    println!(
        "  trend bytes: library {lib_bytes}, sparse {sparse_bytes}; per snapshot (cut + to_pb + \
         protobuf) {:.1} µs CPU, the library's encoding in place of the sparse one {:.1} µs \
         ({:.2}x); at one snapshot a second {:.3} % of a core",
        cut.median() + to_pb.median() + prost_enc.median(),
        cut.median() + to_pb.median() - sparse.median() + lib.median() + prost_enc.median(),
        (cut.median() + to_pb.median() - sparse.median() + lib.median() + prost_enc.median())
            / (cut.median() + to_pb.median() + prost_enc.median()),
        (cut.median() + to_pb.median() + prost_enc.median()) / 1e4,
    );
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rounds = args.first().copied().unwrap_or(200).max(10);
    let ms: Vec<usize> = if args.len() > 1 {
        args[1..].iter().map(|&m| m as usize).collect()
    } else {
        vec![1, 4]
    };
    for m in ms {
        run(rounds, m.max(1));
    }
}
