//! The worker against targets that misbehave on purpose (`barrage_testkit::hostile`):
//! what it sends, what it records and what memory it takes, compared with the target's own
//! request count and the kernel's record of the process.
use std::time::Duration;

use barrage_testkit::hostile::{Hostile, Mode};
use barrage_worker::http::{build_client, Http, Kept, Request, TransportError};
use tokio_util::sync::CancellationToken;

use crate::harness::{summary_count, temp_file, Finished, WORKER};

/// A target that reads each request and closes without answering gets every POST once:
/// a request on a fresh connection is never sent again (issue 14, fault 3).
#[tokio::test]
async fn a_post_on_a_fresh_connection_is_sent_once_when_the_target_closes_without_answering() {
    let target = Hostile::start(Mode::CloseWithoutAnswer);
    let http = Http::new(build_client().unwrap(), Duration::from_secs(5));
    let cancel = CancellationToken::new();
    let url = format!("{}/threads", target.url());
    let n = 10;
    for _ in 0..n {
        let req = Request {
            method: &reqwest::Method::POST,
            url: &url,
            body: Some(barrage_worker::http::ReqBody::One(b"{}")),
            auth: None,
            accept: None,
            extra: &[],
        };
        let ex = http.execute(&req, &mut Vec::new(), &cancel).await.unwrap();
        assert_eq!(ex.error, Some(TransportError::Send), "{ex:?}");
        assert!(!ex.retried, "{ex:?}");
    }
    assert_eq!(target.requests(), n, "one POST per recorded request");
    assert_eq!(target.connections(), n);
}

/// Each way of misbehaving is one failed exchange of the matching kind, read within the
/// request timeout and kept within the sink's limit.
#[tokio::test]
async fn every_hostile_answer_is_a_failed_exchange_of_its_kind() {
    let cases = [
        (Mode::Hang, TransportError::Timeout),
        (Mode::EndlessBody, TransportError::Timeout),
        (Mode::BadChunkSize, TransportError::Body),
        (Mode::Garbage, TransportError::Send),
        (Mode::CloseWithoutAnswer, TransportError::Send),
    ];
    for (mode, want) in cases {
        let target = Hostile::start(mode.clone());
        let http = Http::new(build_client().unwrap(), Duration::from_millis(500));
        let url = format!("{}/x", target.url());
        let req = Request {
            method: &reqwest::Method::GET,
            url: &url,
            body: None,
            auth: None,
            accept: None,
            extra: &[],
        };
        let mut kept = Vec::new();
        let mut sink = Kept::new(&mut kept, 4096);
        let ex = http
            .execute(&req, &mut sink, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(ex.error, Some(want), "{mode:?}: {ex:?}");
        assert!(
            ex.duration
                >= Duration::from_millis(if want == TransportError::Timeout {
                    500
                } else {
                    0
                })
        );
        assert!(kept.len() <= 4096, "{mode:?}");
        assert_eq!(target.requests(), 1, "{mode:?}: sent once");
        if mode == Mode::EndlessBody {
            assert!(
                ex.received > 4096,
                "the endless body is counted as it streams: {ex:?}"
            );
        }
    }
}

/// A connection refused is a failed sample, not a second connection attempt.
#[tokio::test]
async fn a_refused_connection_is_not_tried_again() {
    let port = barrage_testkit::free_port();
    let http = Http::new(build_client().unwrap(), Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{port}/x");
    let req = Request {
        method: &reqwest::Method::GET,
        url: &url,
        body: None,
        auth: None,
        accept: None,
        extra: &[],
    };
    let ex = http
        .execute(&req, &mut Vec::new(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        (ex.error, ex.retried),
        (Some(TransportError::Connect), false)
    );
}

/// Against a target that never answers, the requests and iterations the hard stop cuts are
/// recorded and printed: failed requests tagged `error=interrupted`, and
/// `interrupted_iterations` (issue 14: a dead target's run must not look empty).
#[test]
fn a_target_that_never_answers_gives_interrupted_requests_and_iterations() {
    let target = Hostile::start(Mode::Hang);
    let plan = temp_file(
        &format!(
            "name = \"hang\"\ngraceful_stop = \"200ms\"\n[target]\nurl = \"{}\"\n[scenario]\nexecutor = \"constant-vus\"\nvus = 2\nduration = \"1s\"\n",
            target.url()
        ),
        ".toml",
    );
    let out = crate::harness::Worker::spawn(&["--standalone", "--plan", plan.as_str()], &[])
        .wait(Duration::from_secs(60));
    assert_eq!(
        summary_count(&out.stdout, "interrupted_iterations"),
        Some(2.0),
        "{}",
        out.show()
    );
    assert_eq!(
        summary_count(&out.stdout, "http_reqs"),
        Some(2.0),
        "{}",
        out.show()
    );
    assert_eq!(target.requests(), 2);
    assert!(
        out.stdout.contains("http_req_failed") && out.stdout.contains("100.00%"),
        "{}",
        out.show()
    );
}

/// The peak resident memory of a process, from `/proc/<pid>/status` (`VmHWM`, KiB).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A byte count of the summary (`data_received....: 2.6 GB  720 MB/s`).
fn summary_bytes(stdout: &str, metric: &str) -> Option<f64> {
    let line = stdout.lines().find(|l| l.trim().starts_with(metric))?;
    let mut words = line.split(':').nth(1)?.split_whitespace();
    let n: f64 = words.next()?.parse().ok()?;
    let unit = match words.next()? {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    Some(n * unit)
}

/// A cgroup v1 memory cgroup capping what the process under test may take, so that a
/// worker that buffers without bound is killed there instead of hurting the machine.
struct MemCap {
    dir: std::path::PathBuf,
}

impl MemCap {
    fn new(bytes: u64) -> Option<MemCap> {
        let root = std::path::Path::new("/sys/fs/cgroup/memory");
        if !root.join("memory.limit_in_bytes").exists() {
            return None;
        }
        let dir = root.join(format!("barrage-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        std::fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string()).ok()?;
        Some(MemCap { dir })
    }
}

impl Drop for MemCap {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Ten VUs against a target answering 100 MB to every request: the worker's peak RSS
/// stays under 64 MiB (it keeps `flow.response_body_limit` per VU and counts the rest),
/// and the run ends on time with every byte counted (issue 14, fault 2).
#[test]
fn worker_memory_stays_bounded_against_a_huge_answer() {
    const LEN: u64 = 100_000_000;
    let Some(cap) = barrage_testkit::require(
        "hostile::worker_memory_stays_bounded_against_a_huge_answer",
        "a writable cgroup v1 memory controller (root)",
        MemCap::new(512 << 20),
        "run as root on a host with /sys/fs/cgroup/memory",
    ) else {
        return;
    };
    let target = Hostile::start(Mode::HugeBody { len: LEN });
    let plan = temp_file(
        &format!(
            "name = \"mem\"\ngraceful_stop = \"1s\"\n[target]\nurl = \"{}\"\n[scenario]\nexecutor = \"constant-vus\"\nvus = 10\nduration = \"3s\"\n",
            target.url()
        ),
        ".toml",
    );
    // Into the cgroup before exec: nothing of the worker runs uncapped.
    let procs = cap.dir.join("cgroup.procs");
    let script = format!("echo $$ > {} && exec \"$0\" \"$@\"", procs.display());
    let results = crate::harness::ResultsDir::new();
    let started = std::time::Instant::now();
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            &script,
            WORKER,
            "--standalone",
            "--results-dir",
            results.0.to_str().unwrap(),
            "--plan",
            plan.as_str(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Finished {
        args: vec!["--standalone".into(), "--plan".into(), plan.as_str().into()],
        status,
        stdout: std::io::read_to_string(child.stdout.take().unwrap()).unwrap(),
        stderr: std::io::read_to_string(child.stderr.take().unwrap()).unwrap(),
        took: started.elapsed(),
        results: Some(results),
    };
    eprintln!("peak RSS of the worker: {peak} KiB");
    assert!(
        out.code().is_some(),
        "ended by a signal (the cgroup's OOM killer?)\n{}",
        out.show()
    );
    assert!(
        peak > 0 && peak < 64 * 1024,
        "peak RSS {peak} KiB\n{}",
        out.show()
    );
    let received = summary_bytes(&out.stdout, "data_received")
        .unwrap_or_else(|| panic!("no data_received\n{}", out.show()));
    assert!(received >= LEN as f64, "{received}\n{}", out.show());
    assert!(summary_count(&out.stdout, "http_reqs").is_some_and(|n| n >= 1.0));
    // The snapshot ticks were not starved by VUs reading 100 MB each: one progress line
    // per interval, at its time, not a burst after a blocked thread came back.
    let ticks: Vec<f64> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("running (")?.split('s').next()?.parse().ok())
        .collect();
    assert!(ticks.len() >= 3, "{ticks:?}\n{}", out.show());
    assert!(
        ticks.windows(2).all(|w| w[1] - w[0] >= 0.5),
        "{ticks:?}\n{}",
        out.show()
    );
    assert!(target.requests() >= 1);
}
