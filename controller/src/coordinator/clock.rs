//! Clock offset of a worker, from ping/pong rounds at join time.
//!
//! For each round the controller notes when the ping left (`sent`) and when the pong came
//! back (`received`); the worker stamps its own clock when the ping arrived (`worker`).
//! Assuming the trip there takes half the round trip, the worker's clock read
//! `worker` at controller time `sent + rtt/2`, so
//! `offset = worker − (sent + rtt/2)` (worker clock minus controller clock). The round with
//! the smallest RTT has the least room for asymmetry, so its offset wins.

/// Pings per worker.
pub const ROUNDS: u64 = 5;

/// One ping/pong round, µs since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub sent_us: i64,
    pub received_us: i64,
    pub worker_us: i64,
}

/// The estimate: offset (worker − controller) and the RTT of the round it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    pub offset_us: i64,
    pub rtt_us: i64,
}

/// The offset of the round with the smallest RTT; `None` without rounds.
pub fn estimate(rounds: &[Round]) -> Option<Offset> {
    rounds
        .iter()
        .map(|r| {
            let rtt = (r.received_us - r.sent_us).max(0);
            Offset {
                offset_us: r.worker_us - (r.sent_us + rtt / 2),
                rtt_us: rtt,
            }
        })
        .min_by_key(|o| o.rtt_us)
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_rtt_wins() {
        // worker clock 5 ms ahead; one-way delays vary per round
        let r = |sent: i64, there: i64, back: i64| Round {
            sent_us: sent,
            worker_us: sent + there + 5_000,
            received_us: sent + there + back,
        };
        let rounds = [r(0, 900, 100), r(10_000, 200, 200), r(20_000, 50, 3000)];
        assert_eq!(
            estimate(&rounds),
            Some(Offset {
                offset_us: 5_000,
                rtt_us: 400
            })
        );
        assert_eq!(estimate(&[]), None);
        // behind, symmetric
        let behind = [Round {
            sent_us: 1_000,
            received_us: 1_100,
            worker_us: 1_050 - 2_000,
        }];
        assert_eq!(estimate(&behind).unwrap().offset_us, -2_000);
    }
}
