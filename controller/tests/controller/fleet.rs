//! A fleet on one controller: 200 simulated workers (real gRPC `Join` streams from this
//! process, `barrage_controller::coordinator::simulate`) against a real `barrage
//! controller`. The fleet bench (`bench/controller/fleet.rs`) does the same at 1,000.
use crate::util::{controller, plan_file, read_json, token_file};
use barrage_controller::coordinator::simulate::{
    realistic_snapshot, run_worker, Fate, SimConfig, Template,
};
use std::sync::Arc;
use std::time::Duration;

const WORKERS: usize = 200;
const SECONDS: u64 = 4;

/// 200 simulated workers meeting their fates; their reports, the controller's exit code
/// and output, and the run's summary.
fn fleet(
    fate: impl Fn(usize) -> Fate,
) -> (
    Vec<barrage_controller::coordinator::simulate::SimReport>,
    i32,
    String,
    serde_json::Value,
) {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let plan = plan_file(dir.path(), "fleet.toml", WORKERS as u64, SECONDS, "");
    let token = token_file(dir.path(), "token", "fleet-token");
    let (mut ctl, addr) = controller(&plan, WORKERS, &token, &results);
    let cfg = Arc::new(SimConfig {
        controller: format!("http://{addr}"),
        token: Some("fleet-token".into()),
        connect_timeout: Duration::from_secs(20),
    });
    // a few distinct intervals, as different workers measure different values
    let templates: Vec<Arc<Template>> = (0..8)
        .map(|i| Arc::new(Template::new(&realistic_snapshot(i)).unwrap()))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let reports = rt.block_on(async {
        let tasks: Vec<_> = (0..WORKERS)
            .map(|i| {
                tokio::spawn(run_worker(
                    cfg.clone(),
                    format!("sim-{i}"),
                    templates[i % templates.len()].clone(),
                    fate(i),
                    Duration::from_secs(90),
                ))
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let reports: Vec<_> = reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| panic!("sim-{i}: {e}\n{}", ctl.output())))
        .collect();
    let code = ctl.exit_code(Duration::from_secs(60));
    let summary = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".summary.json"))
        .map(|p| read_json(&p))
        .unwrap_or_else(|| panic!("no summary\n{}", ctl.output()));
    (reports, code, ctl.output(), summary)
}

#[test]
fn two_hundred_workers_join_start_together_and_merge_exactly() {
    let (reports, code, out, s) = fleet(|_| Fate::Normal);
    assert_eq!(code, 0, "{out}");

    // all joined, and all got the same start, before it
    let start_at = reports[0].start_at_us.expect("a Start");
    let last_join = reports
        .iter()
        .map(|r| r.welcomed_us.unwrap())
        .max()
        .unwrap();
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r.start_at_us, Some(start_at), "sim-{i}: {r:?}");
        assert!(
            r.start_received_us.unwrap() < start_at,
            "sim-{i} got its Start after stage time 0: {r:?}"
        );
        assert_eq!(r.snapshots, SECONDS, "sim-{i}: {r:?}");
        assert!(r.done_sent, "sim-{i}");
    }
    let join_to_start = Duration::from_micros((start_at - last_join) as u64);
    assert!(
        join_to_start < Duration::from_secs(10),
        "start {join_to_start:?} after the last join"
    );

    // the merged totals are what was sent
    let sent = |f: fn(&barrage_controller::coordinator::simulate::SimReport) -> f64| -> f64 {
        reports.iter().map(f).sum()
    };
    let metric = |name: &str| s["metrics"][name]["count"].as_f64().unwrap();
    assert_eq!(metric("http_reqs"), sent(|r| r.http_reqs));
    assert_eq!(metric("iterations"), sent(|r| r.iterations));
    assert_eq!(
        metric("http_req_duration"),
        sent(|r| r.duration_samples as f64)
    );
    let ws = s["workers"].as_array().unwrap();
    assert_eq!(ws.len(), WORKERS);
    assert!(ws.iter().all(|w| w["lost"].is_null()), "{ws:?}");
    // every interval merged every worker
    let rows = s["timeseries"]["rows"].as_array().unwrap();
    assert_eq!(rows.len() as u64, SECONDS, "{rows:?}");
    assert!(
        rows.iter().all(|r| r[1].as_f64() == Some(WORKERS as f64)),
        "{rows:?}"
    );
}

/// Workers that hang (stream open, nothing sent) in a fleet are lost by liveness, and
/// every survivor is told its new share with the count of the workers left but not their
/// ids (a fleet's list would cost the square of its size per loss); what the lost ones
/// sent before stays merged.
#[test]
fn hung_workers_in_a_fleet_are_lost_and_their_share_reassigned() {
    const HUNG: [usize; 2] = [7, 150];
    let (reports, code, out, s) = fleet(|i| {
        if HUNG.contains(&i) {
            Fate::Silent { after_seq: 0 }
        } else {
            Fate::Normal
        }
    });
    assert_eq!(code, 0, "{out}");
    let ws = s["workers"].as_array().unwrap();
    let lost: Vec<_> = ws.iter().filter(|w| !w["lost"].is_null()).collect();
    assert_eq!(lost.len(), HUNG.len(), "{lost:?}");
    assert!(
        lost.iter().all(|w| w["lost"]["reason"]
            .as_str()
            .unwrap()
            .contains("sent nothing")),
        "{lost:?}"
    );
    for (i, r) in reports.iter().enumerate() {
        if HUNG.contains(&i) {
            assert_eq!(r.snapshots, 1, "sim-{i}: {r:?}");
            continue;
        }
        assert!(
            !r.reassigned_left.is_empty(),
            "sim-{i} got no Reassign: {r:?}"
        );
        let last = r.reassigned_left.last().unwrap();
        assert_eq!(*last, ((WORKERS - HUNG.len()) as u32, 0), "sim-{i}: {r:?}");
    }
    let sent: f64 = reports.iter().map(|r| r.http_reqs).sum();
    assert_eq!(s["metrics"]["http_reqs"]["count"].as_f64().unwrap(), sent);
}
