//! `barrage-worker --standalone` as a real process against the reference runtime; its
//! summary is checked against the runtime's own `/stats`.
use crate::harness::{has_verdict, summary_count, temp_file, Finished, Target, Worker};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn plan_toml(url: &str, scenario: &str, extra: &str) -> String {
    format!(
        "name = \"t\"\ngraceful_stop = \"10s\"\n{extra}\n[target]\nurl = \"{url}\"\n[scenario]\n{scenario}\n"
    )
}

/// `barrage-worker --standalone` on a [`plan_toml`] plan, to its end.
fn run_plan(url: &str, scenario: &str, extra: &str) -> Finished {
    let plan = temp_file(&plan_toml(url, scenario, extra), ".toml");
    Worker::spawn(&["--standalone", "--plan", plan.as_str()], &[]).wait(LIMIT)
}

#[test]
fn constant_vus_request_count_matches_the_runtime_record() {
    let target = Target::start();
    let before = target.requests_total();
    let out = run_plan(
        &target.url,
        "executor = \"constant-vus\"\nvus = 2\nduration = \"2s\"",
        "[thresholds]\nhttp_req_failed = [\"rate<0.05\"]",
    );
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let reqs = summary_count(&out.stdout, "http_reqs").unwrap_or_else(|| panic!("{}", out.show()));
    assert!(reqs > 10.0, "{}", out.show());
    assert_eq!(
        reqs as u64,
        target.requests_total() - before,
        "{}",
        out.show()
    );
    assert!(
        has_verdict(&out.stdout, "✓ http_req_failed 'rate<0.05'"),
        "{}",
        out.show()
    );
    for name in [
        "iteration_duration",
        "http_req_duration",
        "vus_max",
        "iterations",
    ] {
        assert!(out.stdout.contains(name), "{name} missing\n{}", out.show());
    }
    // the same figures in the summary file, which matches the documented schema
    let s = out.summary();
    assert_eq!(s["mode"], "standalone");
    assert_eq!(s["metrics"]["http_reqs"]["count"].as_f64(), Some(reqs));
    assert_eq!(s["result"]["exit_code"], 0);
    assert_eq!(s["workers"][0]["requests"].as_f64(), Some(reqs));
    let rows = s["timeseries"]["rows"].as_array().unwrap();
    assert!(rows.len() >= 2, "one row per interval: {rows:?}");
    let per_interval: f64 = rows.iter().map(|r| r[3].as_f64().unwrap()).sum();
    assert_eq!(per_interval, reqs, "the time series adds up to the total");
}

#[test]
fn smoke_profile_runs_exactly_one_iteration() {
    let target = Target::start();
    let before = target.requests_total();
    let out = Worker::spawn(
        &[
            "--standalone",
            "--profile",
            "smoke",
            "--target",
            &target.url,
        ],
        &[],
    )
    .wait(LIMIT);
    assert_eq!(
        summary_count(&out.stdout, "iterations"),
        Some(1.0),
        "{}",
        out.show()
    );
    let reqs = summary_count(&out.stdout, "http_reqs").unwrap();
    assert_eq!(reqs as u64, target.requests_total() - before);
    // issue 17 §3: the one VU ran within one interval and printed `vus 0 min=0 max=0`
    let vus = out
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("vus.") || l.starts_with("vus "))
        .unwrap_or_else(|| panic!("no vus line\n{}", out.show()));
    assert!(vus.ends_with(" 1 min=1 max=1"), "{vus}\n{}", out.show());
    // the smoke profile carries the seed's thresholds; against the reference they pass
    assert_eq!(out.code(), Some(0), "{}", out.show());
}

#[test]
fn arrival_rate_runs_the_scheduled_iterations() {
    let target = Target::start();
    let out = run_plan(
            &target.url,
            "executor = \"constant-arrival-rate\"\nrate = 20\nduration = \"3s\"\npre_allocated_vus = 10\nmax_vus = 20",
            "",
    );
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert_eq!(
        summary_count(&out.stdout, "iterations"),
        Some(60.0),
        "{}",
        out.show()
    );
    assert_eq!(
        summary_count(&out.stdout, "dropped_iterations"),
        None,
        "{}",
        out.show()
    );
    // issue 12 §4: it started what its schedule had due, so the run is valid
    let s = out.summary();
    assert_eq!(s["validity"]["valid"], true, "{}", out.show());
    let h = &s["workers"][0]["health"];
    assert_eq!(h["iterations_due"], 60, "{h}");
    assert_eq!(h["iterations_started"], 60, "{h}");
}

/// Dropped iterations are load the plan asked for and the run did not deliver: the run is
/// invalid (issue 12 §4), exit 97, the summary names the stage and the drops.
#[test]
fn arrival_rate_counts_dropped_iterations_against_a_slow_target() {
    let target = Target::start_slow(Duration::from_millis(400));
    let out = run_plan(
            &target.url,
            "executor = \"constant-arrival-rate\"\nrate = 20\nduration = \"2s\"\npre_allocated_vus = 1\nmax_vus = 2",
            "",
    );
    assert_eq!(out.code(), Some(97), "{}", out.show());
    let s = out.summary();
    assert_eq!(s["result"]["exit_code"], 97);
    let p = s["validity"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["what"] == "iteration_rate")
        .unwrap_or_else(|| panic!("{}", s["validity"]));
    assert_eq!(p["worker"], "standalone", "{}", s["validity"]);
    assert_eq!(p["stage"], 0);
    assert!(p["detail"].as_str().unwrap().contains("dropped"), "{p}");
    assert!(out.stdout.contains("INVALID RUN"), "{}", out.show());
    let done = summary_count(&out.stdout, "iterations").unwrap_or(0.0);
    let dropped = summary_count(&out.stdout, "dropped_iterations")
        .unwrap_or_else(|| panic!("{}", out.show()));
    assert_eq!(done + dropped, 40.0, "{}", out.show());
    assert!(
        dropped >= 30.0,
        "2 VUs of >1 s iterations cannot run 20/s\n{}",
        out.show()
    );
    // --allow-invalid: the exit code of a valid run; the summary still says invalid
    let plan = temp_file(
        &plan_toml(
            &target.url,
            "executor = \"constant-arrival-rate\"\nrate = 20\nduration = \"1s\"\npre_allocated_vus = 1\nmax_vus = 1",
            "",
        ),
        ".toml",
    );
    let out = Worker::spawn(
        &["--standalone", "--plan", plan.as_str(), "--allow-invalid"],
        &[],
    )
    .wait(LIMIT);
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let s = out.summary();
    assert_eq!(s["validity"]["valid"], false, "{}", out.show());
    assert_eq!(s["validity"]["allow_invalid"], true);
    assert!(out.stdout.contains("--allow-invalid"), "{}", out.show());
}

#[test]
fn graceful_stop_lets_iterations_finish_and_a_short_one_cuts_them() {
    let target = Target::start_slow(Duration::from_millis(700));
    // each iteration makes several LLM-backed runs: > 2 s against a 700 ms LLM
    for (graceful, iterations) in [("20s", Some(2.0)), ("200ms", None)] {
        let plan = temp_file(
            &format!(
                "name = \"t\"\ngraceful_stop = \"{graceful}\"\n[target]\nurl = \"{}\"\n[scenario]\nexecutor = \"constant-vus\"\nvus = 2\nduration = \"500ms\"\n",
                target.url
            ),
            ".toml",
        );
        let out = Worker::spawn(&["--standalone", "--plan", plan.as_str()], &[]).wait(LIMIT);
        assert_eq!(out.code(), Some(0), "{}", out.show());
        assert_eq!(
            summary_count(&out.stdout, "iterations"),
            iterations,
            "graceful_stop {graceful}\n{}",
            out.show()
        );
        if iterations.is_none() {
            assert!(out.took < Duration::from_secs(5), "{}", out.show());
        }
    }
}

#[test]
fn failed_thresholds_exit_99_and_bad_input_exits_2() {
    let target = Target::start();
    let out = run_plan(
        &target.url,
        "executor = \"per-vu-iterations\"\nvus = 1\niterations = 1",
        "[thresholds]\nhttp_reqs = [\"count<1\"]",
    );
    assert_eq!(out.code(), Some(99), "{}", out.show());
    assert!(
        has_verdict(&out.stdout, "✗ http_reqs 'count<1'"),
        "{}",
        out.show()
    );

    let bad = temp_file(
        "[scenario]\nexecutor = \"constant-vus\"\nvus = 0\nduration = \"1s\"\n",
        ".toml",
    );
    let out = Worker::spawn(&["--standalone", "--plan", bad.as_str()], &[]).wait(LIMIT);
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(out.stderr.contains("scenario.vus"), "{}", out.show());

    let out = Worker::spawn(&["--standalone"], &[]).wait(LIMIT);
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        out.stderr.contains("--plan FILE or --profile NAME"),
        "{}",
        out.show()
    );

    let out = Worker::spawn(
        &[
            "--standalone",
            "--profile",
            "smoke",
            "--jwt-secret-env",
            "BARRAGE_TEST_UNSET_VAR",
        ],
        &[],
    )
    .wait(LIMIT);
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        out.stderr.contains("BARRAGE_TEST_UNSET_VAR"),
        "{}",
        out.show()
    );
}

#[test]
fn a_one_request_flow_sends_exactly_its_request() {
    let target = Target::start();
    let before = target.requests_total();
    // POST /threads with a per-VU body: 2 VUs × 5 iterations = 10 threads created
    let out = run_plan(
            &target.url,
            "executor = \"per-vu-iterations\"\nvus = 2\niterations = 5",
            "[thresholds]\n\"http_reqs{operation:request}\" = [\"count==10\"]\n\
             \"http_req_failed{operation:request}\" = [\"rate==0\"]\n\
             request = [\"p(99)<5000\"]\n\
             [flow]\nrequest = { method = \"POST\", path = \"/threads\", body = '{\"metadata\":{\"vu\":{vu}}}' }",
    );
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert_eq!(target.requests_total() - before, 10, "{}", out.show());
    assert_eq!(summary_count(&out.stdout, "http_reqs"), Some(10.0));
    assert!(
        !out.stdout.contains("agent_flow"),
        "a one-request flow records no agent-flow metrics\n{}",
        out.show()
    );

    // a path the target does not know: every request is a failed one
    let out = run_plan(
        &target.url,
        "executor = \"per-vu-iterations\"\nvus = 1\niterations = 3",
        "[thresholds]\nhttp_req_failed = [\"rate<0.5\"]\n\
             [flow]\nrequest = { path = \"/threads/no-such-thread/state\" }",
    );
    assert_eq!(out.code(), Some(99), "{}", out.show());
    assert!(
        has_verdict(&out.stdout, "✗ http_req_failed 'rate<0.5'"),
        "{}",
        out.show()
    );
}

/// Issue 14 §12: the default ramp's shape (0→1→3→5→3→1 VUs, stages shortened to 9 s) with
/// the seed's thresholds against a server that keys assistants by graph + config (the
/// reference runtime's `--assistant-id-from-config`): no VU's assistant may collide with
/// another's (a 409 at `create_assistant`), so every request passes.
#[test]
fn default_ramp_passes_against_a_server_keying_assistants_by_config() {
    let target = Target::start_with(Duration::ZERO, true);
    let scenario = "executor = \"ramping-vus\"\nstart_vus = 0\nstages = [\
        { duration = \"1s\", target = 1 }, { duration = \"2s\", target = 3 }, \
        { duration = \"3s\", target = 5 }, { duration = \"2s\", target = 3 }, \
        { duration = \"1s\", target = 1 }]";
    let thresholds = "[thresholds]\nhttp_req_failed = [\"rate<0.05\"]\n\
        create_assistant = [\"p(95)<500\"]\ncreate_thread = [\"p(95)<500\"]\n\
        run_wait = [\"p(95)<5000\"]\nagent_flow_duration = [\"p(95)<8000\"]\n\
        agent_flow_success_rate = [\"rate>0.95\"]";
    let out = run_plan(&target.url, scenario, thresholds);
    assert_eq!(out.code(), Some(0), "{}", out.show());
    assert_eq!(
        summary_count(&out.stdout, "vus_max"),
        Some(5.0),
        "{}",
        out.show()
    );
    let iterations = summary_count(&out.stdout, "iterations").unwrap();
    let stats = target.stats();
    assert_eq!(
        stats["requests"]["create_assistant"].as_f64(),
        Some(iterations),
        "one assistant per iteration: {stats}"
    );
    // every iteration deleted its assistant: none left, none refused
    assert_eq!(stats["assistants"], 0, "{stats}");
    assert!(
        has_verdict(&out.stdout, "✓ http_req_failed 'rate<0.05'"),
        "{}",
        out.show()
    );
    // every iteration got past create_assistant: its three runs all ran and succeeded
    assert_eq!(
        stats["runs"]["succeeded"].as_f64(),
        Some(3.0 * iterations),
        "{stats}\n{}",
        out.show()
    );
}

/// `stream_buffered`: 0 when the reference runtime streams its run as it goes (metadata at
/// once, values after the 120 ms LLM call), 1 when it holds the stream back (`--buffer-sse`),
/// and the text warns then.
#[test]
fn a_buffered_stream_is_detected() {
    let llm = Duration::from_millis(120);
    for (buffer, want) in [(false, 0.0), (true, 1.0)] {
        let target = Target::start_opts(llm, false, buffer);
        let out = run_plan(
            &target.url,
            "executor = \"per-vu-iterations\"\nvus = 1\niterations = 2",
            "",
        );
        let s = out.summary();
        let rate = s["metrics"]["stream_buffered"]["rate"]
            .as_f64()
            .unwrap_or_else(|| panic!("no stream_buffered\n{}", out.show()));
        assert_eq!(rate, want, "--buffer-sse {buffer}\n{}", out.show());
        assert_eq!(
            out.stdout.contains("stream_buffered: "),
            buffer,
            "a warning only when streams were held back\n{}",
            out.show()
        );
        if buffer {
            assert!(out.stdout.contains("buffers SSE"), "{}", out.show());
        }
    }
}

/// `stream_first_token` is the first AI content (and `stream_event_gap` paces the events), not the runtime's `metadata` event: behind a
/// 120 ms LLM, `stream_first_event` stays quick while the first token waits for the LLM, in
/// `values` mode (a state with the new AI message) and in `messages-tuple` mode (the first
/// non-empty chunk).
#[test]
fn the_first_token_waits_for_the_llm_and_the_first_event_does_not() {
    let target = Target::start_slow(Duration::from_millis(120));
    for mode in ["values", "messages-tuple"] {
        let out = run_plan(
            &target.url,
            "executor = \"per-vu-iterations\"\nvus = 1\niterations = 3",
            &format!("[flow]\nstream_mode = [\"{mode}\"]"),
        );
        assert_eq!(out.code(), Some(0), "{mode}\n{}", out.show());
        let s = out.summary();
        let med = |m: &str| {
            s["metrics"][m]["med"]
                .as_f64()
                .unwrap_or_else(|| panic!("{mode}: no {m}\n{}", out.show()))
        };
        let (event, token) = (med("stream_first_event"), med("stream_first_token"));
        assert!(event < 60.0, "{mode}: first event {event} ms");
        assert!(token >= 120.0, "{mode}: first token {token} ms");
        assert_eq!(s["metrics"]["stream_first_token"]["count"], 3, "{mode}");
        if mode == "values" {
            // the input state at once, the final state after the LLM: one gap per stream
            let gap = &s["metrics"]["stream_event_gap{event:values}"];
            assert_eq!(gap["count"], 3, "{}", out.show());
            assert!(gap["med"].as_f64().unwrap() >= 110.0, "values gap {gap}");
        }
    }
}
