//! Rejoining a restarted controller (soak runs): with `Assignment.rejoin_grace_ms` > 0, a
//! worker whose stream breaks keeps its load running, keeps its last snapshots, and dials
//! the controller again until the grace is over; the controller restarted with `--resume`
//! takes it back as the worker it was (`Hello.rejoin`), and the kept snapshots are resent
//! (the controller drops those it already has). Without a grace nothing changes: the
//! worker stops its load as `barrage_core::liveness` says.
//!
//! ```text
//! run task ─ Snapshot/Points ─► Relay ─┬─► controller stream (when connected)
//!                                      └─► kept: the last `keep` snapshots
//! stream breaks ─► dial until last word + grace ─► Hello{rejoin} ─► resend kept ─► go on
//!                                                └─ grace over ─► stop the load (exit 4)
//! ```
use barrage_proto::pb::{self, worker_message::Msg as Out};
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// Between the run task and whatever stream is current.
pub struct Relay {
    rx: mpsc::Receiver<pb::WorkerMessage>,
    /// The last snapshots sent, oldest first.
    kept: VecDeque<pb::WorkerMessage>,
    keep: usize,
}

impl Relay {
    /// A relay keeping nothing yet; the sender goes to the run task.
    pub fn new(capacity: usize) -> (mpsc::Sender<pb::WorkerMessage>, Relay) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            tx,
            Relay {
                rx,
                kept: VecDeque::new(),
                keep: 0,
            },
        )
    }

    /// Keep the last `n` snapshots from now on (the assignment's `rejoin_keep_snapshots`).
    pub fn keep(&mut self, n: usize) {
        self.keep = n;
    }

    /// The next message of the run task (`None`: no run task holds a sender).
    pub async fn recv(&mut self) -> Option<pb::WorkerMessage> {
        self.rx.recv().await
    }

    /// A message of the run task, without waiting.
    pub fn try_recv(&mut self) -> Option<pb::WorkerMessage> {
        self.rx.try_recv().ok()
    }

    /// Remembers `m` if it is a snapshot (bounded by `keep`); returns it.
    pub fn remember(&mut self, m: pb::WorkerMessage) -> pb::WorkerMessage {
        if self.keep > 0 && matches!(m.msg, Some(Out::Snapshot(_))) {
            if self.kept.len() == self.keep {
                self.kept.pop_front();
            }
            self.kept.push_back(m.clone());
        }
        m
    }

    /// The kept snapshots, oldest first, for a rejoined controller.
    pub fn kept(&self) -> impl Iterator<Item = &pb::WorkerMessage> {
        self.kept.iter()
    }
}

/// The rejoin part of a `Hello`.
pub fn rejoin_hello(mut hello: pb::WorkerMessage, rejoin: pb::Rejoin) -> pb::WorkerMessage {
    if let Some(Out::Hello(h)) = &mut hello.msg {
        h.rejoin = Some(rejoin);
    }
    hello
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(seq: u64) -> pb::WorkerMessage {
        pb::WorkerMessage {
            msg: Some(Out::Snapshot(pb::Snapshot {
                seq,
                ..Default::default()
            })),
        }
    }

    #[tokio::test]
    async fn the_relay_keeps_the_last_snapshots_only() {
        let (tx, mut r) = Relay::new(16);
        r.keep(3);
        for seq in 0..5 {
            tx.send(snap(seq)).await.unwrap();
        }
        tx.send(pb::WorkerMessage {
            msg: Some(Out::Points(pb::PointBatch::default())),
        })
        .await
        .unwrap();
        while let Some(m) = r.try_recv() {
            r.remember(m);
        }
        let seqs: Vec<u64> = r
            .kept()
            .filter_map(|m| match &m.msg {
                Some(Out::Snapshot(s)) => Some(s.seq),
                _ => None,
            })
            .collect();
        assert_eq!(
            seqs,
            vec![2, 3, 4],
            "points are not kept, old snapshots drop"
        );
    }
}
