//! Tests of `hub`, in a file of their own to keep the module readable.
use super::*;

#[test]
fn the_start_delay_follows_the_measured_round() {
    let ms = Duration::from_millis;
    // two workers on loopback: the floor
    assert_eq!(
        start_delay(ms(3), Duration::from_micros(200)),
        MIN_START_DELAY
    );
    // a fleet whose assignment round took 700 ms, slowest RTT 40 ms
    assert_eq!(start_delay(ms(700), ms(40)), ms(1480));
    // a round slower than the cap allows is capped
    assert_eq!(start_delay(ms(4000), ms(10)), MAX_START_DELAY);
}

/// The check runs at the deadline, not at the next tick after it: a worker silent
/// since `t` is kept until `t + 2.5 intervals` and dropped at it, whatever the interval
/// and however late the hub's tick runs.
#[test]
fn a_silent_worker_is_dropped_at_its_deadline() {
    use super::super::heard::Heard;
    for ms in [100u64, 250, 333, 1000, 1500, 5000, 60_000] {
        let interval = Duration::from_millis(ms);
        let limit = liveness::controller_gives_up(interval);
        let mut r = Roster::default();
        let (tx, _rx) = mpsc::channel(4);
        r.admit(pb::Hello::default(), tx, Heard::new());
        let t = Instant::now();
        r.reset_liveness(t);
        // the hub's turns: late ones (half an interval), never a stall
        let mut at = t;
        while at < t + limit {
            r.turn(at, interval, limit);
            at += interval / 2;
        }
        let (lost, due) = r.check_liveness(t + interval, limit);
        assert!(lost.is_empty(), "interval {ms} ms");
        // the next check is at the deadline: never before the worker itself has given
        // up (barrage_core::liveness), and not a tick later
        assert_eq!(due, Some(t + limit), "interval {ms} ms");
        assert!(r
            .check_liveness(t + limit - Duration::from_millis(1), limit)
            .0
            .is_empty());
        assert_eq!(r.check_liveness(t + limit, limit).0, vec!["w1".to_string()]);
    }
}
