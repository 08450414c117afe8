//! Model mode: a mock that queues like a loaded model.
//!
//! A real model serves a bounded number of generations at once (its batch); the requests
//! beyond wait, and past some queue depth the provider answers 429. [`Generations`] is that
//! limit: `max_concurrency` slots (a fair, FIFO [`Semaphore`]) with at most `queue_size`
//! requests waiting for one. A request that finds the queue full is refused at once with
//! 429 and a `retry-after`.
//!
//! Timing of one request in model mode (all values as they were when the request arrived;
//! `/admin/config` may change them between requests):
//!
//! ```text
//! queue_wait   = time until a slot is free (0 when one is free on arrival)
//! ttft         = ttft_ms + ttft_per_token_us × prompt_tokens (+ uniform 0..=jitter_ms)
//! first byte   = arrival + queue_wait + ttft
//! chunk i      = first byte + i / tokens_per_s          (i = 0 … completion_tokens)
//! JSON answer  = first byte + completion_tokens / tokens_per_s   (the whole generation)
//! slot freed   = when the answer's last byte is handed to the connection (or it is dropped)
//! retry-after  = ceil((ttft_ms + answer_tokens / tokens_per_s) / max_concurrency), ≥ 1 s
//! ```
//!
//! `retry-after` is the time for one slot to free up on average when every slot runs the
//! configured answer: when a queue position is likely to be free again.
//!
//! The slot is held by the response body, so a stream keeps its slot until its last chunk
//! and a client that goes away frees it. A request dropped while it waits (the client
//! closed the connection) leaves the queue.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::ModelSettings;

/// Upper bounds of the queue-wait histogram buckets, in milliseconds (then `+Inf`).
const BUCKETS_MS: [u64; 14] = [
    1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
];

/// The generation slots and the queue in front of them.
#[derive(Debug)]
pub struct Generations {
    /// One permit per generation slot; tokio's semaphore hands permits out in FIFO order.
    slots: Arc<Semaphore>,
    /// Number of slots, for the in-flight gauge.
    max: usize,
    /// Requests that may wait.
    queue_size: usize,
    /// Requests waiting now.
    queued: AtomicUsize,
    /// Requests refused because the queue was full.
    queue_full: AtomicU64,
    /// Time from arrival at the queue to holding a slot, of every admitted request.
    wait: WaitHistogram,
}

/// A held generation slot: freed when dropped.
#[derive(Debug)]
pub struct Slot {
    /// Returned to the semaphore on drop.
    _permit: OwnedSemaphorePermit,
    /// How long the request waited for it.
    pub waited: Duration,
}

/// The queue was full: answer 429.
#[derive(Debug)]
pub struct QueueFull;

/// Decrements the queue length when a waiting request gets its slot or goes away.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Generations {
    /// `settings.max_concurrency` slots behind a queue of `settings.queue_size`.
    pub fn new(settings: &ModelSettings) -> Self {
        Generations {
            slots: Arc::new(Semaphore::new(settings.max_concurrency)),
            max: settings.max_concurrency,
            queue_size: settings.queue_size,
            queued: AtomicUsize::new(0),
            queue_full: AtomicU64::new(0),
            wait: WaitHistogram::default(),
        }
    }

    /// A slot: at once when one is free, else after the requests queued before this one;
    /// `QueueFull` when `queue_size` requests are already waiting.
    pub async fn admit(&self) -> Result<Slot, QueueFull> {
        // Permits go to waiters first when released, so a free permit means nobody waits:
        // this does not jump the queue.
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            self.wait.record(Duration::ZERO);
            return Ok(Slot {
                _permit: permit,
                waited: Duration::ZERO,
            });
        }
        if self.queued.fetch_add(1, Relaxed) >= self.queue_size {
            self.queued.fetch_sub(1, Relaxed);
            self.queue_full.fetch_add(1, Relaxed);
            return Err(QueueFull);
        }
        let waiting = Waiting(&self.queued);
        let t0 = Instant::now();
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_closed| QueueFull)?;
        drop(waiting);
        let waited = t0.elapsed();
        self.wait.record(waited);
        Ok(Slot {
            _permit: permit,
            waited,
        })
    }

    /// Generations running now.
    pub fn in_flight(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }

    /// Requests waiting now.
    pub fn queued(&self) -> usize {
        self.queued.load(Relaxed)
    }

    /// The `generations` object of `/stats`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "max_concurrency": self.max,
            "queue_size": self.queue_size,
            "in_flight": self.in_flight(),
            "queued": self.queued(),
            "queue_full": self.queue_full.load(Relaxed),
            "queue_wait_ms": self.wait.to_json(),
        })
    }

    /// Appends the model-mode families to a Prometheus text document.
    pub fn write_prometheus(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP mock_llm_generations_in_flight Generations holding a slot (model mode).\n\
             # TYPE mock_llm_generations_in_flight gauge\nmock_llm_generations_in_flight {}",
            self.in_flight()
        );
        let _ = writeln!(
            out,
            "# HELP mock_llm_queue_length Requests waiting for a generation slot (model mode).\n\
             # TYPE mock_llm_queue_length gauge\nmock_llm_queue_length {}",
            self.queued()
        );
        let _ = writeln!(
            out,
            "# HELP mock_llm_queue_full_total Requests refused with 429 because the queue was full.\n\
             # TYPE mock_llm_queue_full_total counter\nmock_llm_queue_full_total {}",
            self.queue_full.load(Relaxed)
        );
        self.wait.write_prometheus(out);
    }
}

/// Model-mode `retry-after` in whole seconds: the mean time for one slot to free up when
/// every slot generates `answer_tokens`, at least 1.
pub fn retry_after_s(settings: &ModelSettings, answer_tokens: u64) -> u64 {
    let generation =
        settings.ttft.as_secs_f64() + answer_tokens as f64 / settings.tokens_per_s.max(0.1);
    let per_slot = generation / settings.max_concurrency.max(1) as f64;
    (per_slot.ceil() as u64).max(1)
}

/// Queue waits in fixed buckets (atomics, no lock), plus their sum and maximum.
#[derive(Debug, Default)]
struct WaitHistogram {
    /// Non-cumulative counts per bucket of [`BUCKETS_MS`]; the last one is `+Inf`.
    counts: [AtomicU64; BUCKETS_MS.len() + 1],
    /// Sum of waits, µs.
    sum_us: AtomicU64,
    /// Largest wait, µs.
    max_us: AtomicU64,
}

impl WaitHistogram {
    fn record(&self, wait: Duration) {
        let us = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_MS
            .iter()
            .position(|&ms| us <= ms * 1_000)
            .unwrap_or(BUCKETS_MS.len());
        self.counts[bucket].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }

    fn snapshot(&self) -> [u64; BUCKETS_MS.len() + 1] {
        std::array::from_fn(|i| self.counts[i].load(Relaxed))
    }

    /// The upper bound (ms) of the bucket holding quantile `q`; the maximum for the last.
    fn quantile_ms(counts: &[u64], q: f64, max_ms: f64) -> f64 {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return BUCKETS_MS
                    .get(i)
                    .map_or(max_ms, |&ms| (ms as f64).min(max_ms));
            }
        }
        max_ms
    }

    fn to_json(&self) -> serde_json::Value {
        let counts = self.snapshot();
        let total: u64 = counts.iter().sum();
        let sum_ms = self.sum_us.load(Relaxed) as f64 / 1_000.0;
        let max_ms = self.max_us.load(Relaxed) as f64 / 1_000.0;
        let buckets: Vec<serde_json::Value> = counts
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let le = BUCKETS_MS
                    .get(i)
                    .map_or(serde_json::Value::from("+Inf"), |&ms| ms.into());
                serde_json::json!({"le_ms": le, "count": n})
            })
            .collect();
        serde_json::json!({
            "count": total,
            "mean": if total == 0 { 0.0 } else { sum_ms / total as f64 },
            "max": max_ms,
            "p50": Self::quantile_ms(&counts, 0.50, max_ms),
            "p90": Self::quantile_ms(&counts, 0.90, max_ms),
            "p99": Self::quantile_ms(&counts, 0.99, max_ms),
            "buckets": buckets,
        })
    }

    fn write_prometheus(&self, out: &mut String) {
        let counts = self.snapshot();
        let _ = writeln!(
            out,
            "# HELP mock_llm_queue_wait_seconds Time from arrival to holding a generation slot (model mode).\n\
             # TYPE mock_llm_queue_wait_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, &n) in counts.iter().enumerate() {
            cumulative += n;
            match BUCKETS_MS.get(i) {
                Some(&ms) => {
                    let _ = writeln!(
                        out,
                        "mock_llm_queue_wait_seconds_bucket{{le=\"{}\"}} {cumulative}",
                        ms as f64 / 1_000.0
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "mock_llm_queue_wait_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "mock_llm_queue_wait_seconds_sum {}\nmock_llm_queue_wait_seconds_count {cumulative}",
            self.sum_us.load(Relaxed) as f64 / 1e6
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max: usize, queue: usize) -> ModelSettings {
        ModelSettings {
            max_concurrency: max,
            queue_size: queue,
            ..ModelSettings::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn slots_then_fifo_queue_then_full() {
        let g = Arc::new(Generations::new(&settings(2, 2)));
        let a = g.admit().await.unwrap();
        let _b = g.admit().await.unwrap();
        assert_eq!(g.in_flight(), 2);
        // Two wait, in order; the third is refused.
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for i in 0..2 {
            let (g, order) = (Arc::clone(&g), Arc::clone(&order));
            waiters.push(tokio::spawn(async move {
                let slot = g.admit().await.unwrap();
                order.lock().unwrap().push(i);
                slot
            }));
            tokio::task::yield_now().await;
        }
        assert_eq!(g.queued(), 2);
        assert!(g.admit().await.is_err(), "queue of 2 is full");
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(a);
        let first = waiters.remove(0).await.unwrap();
        assert_eq!(first.waited, Duration::from_millis(30));
        assert_eq!(*order.lock().unwrap(), [0]);
        assert_eq!(g.queued(), 1);
        drop(first);
        let second = waiters.remove(0).await.unwrap();
        assert_eq!(*order.lock().unwrap(), [0, 1]);
        assert_eq!(g.in_flight(), 2);
        drop(second);
        let doc = g.to_json();
        assert_eq!(doc["queue_full"], 1);
        assert_eq!(doc["queue_wait_ms"]["count"], 4);
        assert_eq!(doc["queue_wait_ms"]["max"], 30.0);
        assert_eq!(doc["queue_wait_ms"]["p99"], 30.0, "{doc}");
        assert_eq!(doc["queue_wait_ms"]["p50"], 1.0, "{doc}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_goes_away_leaves_the_queue() {
        let g = Arc::new(Generations::new(&settings(1, 1)));
        let slot = g.admit().await.unwrap();
        let g2 = Arc::clone(&g);
        let waiter = tokio::spawn(async move { g2.admit().await.map(|_| ()) });
        tokio::task::yield_now().await;
        assert_eq!(g.queued(), 1);
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(g.queued(), 0);
        drop(slot);
        assert_eq!(g.in_flight(), 0);
    }

    #[test]
    fn retry_after_is_one_slot_turn() {
        // (ttft ms, tokens/s, slots, answer tokens, seconds)
        let cases = [
            (200, 50.0, 16, 42, 1),
            (200, 10.0, 1, 42, 5),
            (1000, 1.0, 2, 9, 5),
        ];
        for (ttft, rate, max, tokens, want) in cases {
            let s = ModelSettings {
                ttft: Duration::from_millis(ttft),
                tokens_per_s: rate,
                max_concurrency: max,
                ..ModelSettings::default()
            };
            assert_eq!(retry_after_s(&s, tokens), want, "{s:?}");
        }
    }

    #[test]
    fn prometheus_histogram_is_cumulative() {
        let g = Generations::new(&settings(1, 0));
        g.wait.record(Duration::from_micros(500));
        g.wait.record(Duration::from_millis(7));
        g.wait.record(Duration::from_secs(120));
        let mut out = String::new();
        g.write_prometheus(&mut out);
        for line in [
            "mock_llm_queue_wait_seconds_bucket{le=\"0.001\"} 1\n",
            "mock_llm_queue_wait_seconds_bucket{le=\"0.01\"} 2\n",
            "mock_llm_queue_wait_seconds_bucket{le=\"60\"} 2\n",
            "mock_llm_queue_wait_seconds_bucket{le=\"+Inf\"} 3\n",
            "mock_llm_queue_wait_seconds_count 3\n",
            "# TYPE mock_llm_queue_length gauge\nmock_llm_queue_length 0\n",
        ] {
            assert!(out.contains(line), "{line:?} missing from\n{out}");
        }
    }
}
