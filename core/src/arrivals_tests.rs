use super::*;
use crate::executor::Stage;
use crate::segment::Segment;

fn constant(rate: u64, secs: u64, arrivals: Arrivals) -> ExecutorConfig {
    ExecutorConfig::ConstantArrivalRate {
        rate,
        time_unit: Duration::from_secs(1),
        duration: Duration::from_secs(secs),
        pre_allocated_vus: 1,
        max_vus: 0,
        arrivals,
    }
}

fn walk(cfg: &ExecutorConfig) -> Vec<(u64, Duration)> {
    Schedule::new(cfg).unwrap().collect()
}

/// Mean and coefficient of variation of the gaps between consecutive arrivals, in seconds.
fn gap_stats(times: &[(u64, Duration)]) -> (f64, f64) {
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1].1 - w[0].1).as_secs_f64())
        .collect();
    let n = gaps.len() as f64;
    let mean = gaps.iter().sum::<f64>() / n;
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt() / mean)
}

#[test]
fn uniform_is_the_evenly_spaced_schedule() {
    let cfg = constant(10, 2, Arrivals::default());
    let times = walk(&cfg);
    assert_eq!(times.len(), 20);
    for (i, at) in &times {
        assert_eq!(Some(*at), cfg.iteration_start(*i));
        assert_eq!(at.as_millis() as u64, i * 100);
    }
}

#[test]
fn poisson_mean_rate_and_cv() {
    // 1000/s for 100 s: 100,000 expected; the count's sd is √100000 ≈ 316
    let times = walk(&constant(1000, 100, Arrivals::poisson(7)));
    let n = times.len() as f64;
    assert!((n - 100_000.0).abs() < 1_500.0, "count {n}");
    let (mean, cv) = gap_stats(&times);
    assert!((mean - 0.001).abs() < 0.00002, "mean gap {mean}");
    assert!((cv - 1.0).abs() < 0.03, "cv {cv}");
}

#[test]
fn gamma_cv_is_one_over_root_burstiness() {
    for b in [0.25, 0.5, 2.0, 4.0] {
        let times = walk(&constant(1000, 100, Arrivals::gamma(b, 11)));
        let n = times.len() as f64;
        // the count's sd is about √(n·CV²): at most 2·316 here
        assert!((n - 100_000.0).abs() < 2_500.0, "b={b} count {n}");
        let (mean, cv) = gap_stats(&times);
        assert!(
            (mean - 0.001).abs() / 0.001 < 0.025,
            "b={b} mean gap {mean}"
        );
        let want = 1.0 / f64::sqrt(b);
        assert!((cv - want).abs() / want < 0.05, "b={b} cv {cv} want {want}");
    }
}

#[test]
fn gamma_with_burstiness_one_is_poisson() {
    assert_eq!(
        walk(&constant(100, 10, Arrivals::gamma(1.0, 3))),
        walk(&constant(100, 10, Arrivals::poisson(3)))
    );
}

#[test]
fn same_seed_same_sequence_other_seed_other_sequence() {
    let a = walk(&constant(200, 10, Arrivals::gamma(0.5, 42)));
    let b = walk(&constant(200, 10, Arrivals::gamma(0.5, 42)));
    let c = walk(&constant(200, 10, Arrivals::gamma(0.5, 43)));
    assert_eq!(a, b);
    assert_ne!(a, c);
    // no seed: the fixed default, so two runs of the same plan repeat too
    let none = Arrivals {
        arrival: ArrivalProcess::Poisson,
        burstiness: None,
        seed: None,
    };
    assert_eq!(
        walk(&constant(200, 10, none)),
        walk(&constant(200, 10, Arrivals::poisson(DEFAULT_SEED)))
    );
}

#[test]
fn union_over_segments_is_the_single_worker_schedule() {
    let ramp = ExecutorConfig::RampingArrivalRate {
        start_rate: 0,
        time_unit: Duration::from_secs(1),
        stages: vec![Stage::new(5, 400), Stage::new(5, 400), Stage::new(2, 0)],
        pre_allocated_vus: 1,
        max_vus: 0,
        arrivals: Arrivals::gamma(0.3, 5),
    };
    for cfg in [constant(500, 6, Arrivals::poisson(9)), ramp] {
        let single = walk(&cfg);
        for n in [2usize, 3, 7] {
            let mut union: Vec<(u64, Duration)> = Segment::split_even(n)
                .iter()
                .flat_map(|seg| {
                    // each worker walks every iteration and keeps the ones it owns
                    Schedule::new(&cfg)
                        .unwrap()
                        .filter(|(i, _)| seg.owns_iteration(*i))
                        .collect::<Vec<_>>()
                })
                .collect();
            union.sort_by_key(|(i, _)| *i);
            assert_eq!(union, single, "n={n}");
        }
    }
}

#[test]
fn poisson_follows_a_ramp() {
    // 0 → 1000/s over 20 s (10,000 expected), then 1000/s for 10 s (10,000 more)
    let cfg = ExecutorConfig::RampingArrivalRate {
        start_rate: 0,
        time_unit: Duration::from_secs(1),
        stages: vec![Stage::new(20, 1000), Stage::new(10, 1000)],
        pre_allocated_vus: 1,
        max_vus: 0,
        arrivals: Arrivals::poisson(1),
    };
    let times = walk(&cfg);
    let in_ramp = times.iter().filter(|(_, t)| t.as_secs() < 20).count() as f64;
    let first_half = times.iter().filter(|(_, t)| t.as_secs() < 10).count() as f64;
    assert!((in_ramp - 10_000.0).abs() < 400.0, "ramp {in_ramp}");
    // Λ(10 s) = 2,500 of the ramp's 10,000
    assert!(
        (first_half - 2_500.0).abs() < 200.0,
        "first half {first_half}"
    );
    assert!((times.len() as f64 - 20_000.0).abs() < 600.0);
    assert!(times.windows(2).all(|w| w[0].1 <= w[1].1));
    assert_eq!(cfg.iteration_start(1234), Some(times[1234].1));
}

#[test]
fn plan_keys_parse_and_unknown_ones_are_still_refused() {
    let cfg: ExecutorConfig = toml::from_str(
        r#"
executor = "constant-arrival-rate"
rate = 50
duration = "10s"
pre_allocated_vus = 2
arrival = "gamma"
burstiness = 0.5
seed = 7
"#,
    )
    .unwrap();
    assert_eq!(cfg.arrivals(), Some(Arrivals::gamma(0.5, 7)));
    let back: ExecutorConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
    assert!(cfg
        .describe()
        .ends_with(", gamma arrivals, burstiness 0.5 (seed 7)"));

    let err = toml::from_str::<ExecutorConfig>(
        "executor = \"constant-arrival-rate\"\nrate = 5\nduration = \"1s\"\npre_allocated_vus = 1\narivval = \"poisson\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("arivval"), "{err}");
    let err = toml::from_str::<ExecutorConfig>(
        "executor = \"constant-arrival-rate\"\nrate = 5\nduration = \"1s\"\npre_allocated_vus = 1\narrival = \"bursty\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("bursty"), "{err}");

    // a uniform plan's JSON (what the plan hash covers) does not change
    let uniform = constant(5, 1, Arrivals::default());
    let json = serde_json::to_string(&uniform).unwrap();
    for key in KEYS {
        assert!(!json.contains(&format!("\"{key}\"")), "{json}");
    }
}

#[test]
fn validation_names_the_field_and_the_fix() {
    let errs = |a: Arrivals| {
        let mut e = vec![];
        constant(5, 1, a).validate("scenario", &mut e);
        e
    };
    let cases: [(Arrivals, &str); 5] = [
        (
            Arrivals::gamma(0.0, 1),
            "scenario.burstiness: 0 must be a number > 0",
        ),
        (
            Arrivals::gamma(-2.0, 1),
            "scenario.burstiness: -2 must be a number > 0",
        ),
        (
            Arrivals::gamma(f64::NAN, 1),
            "scenario.burstiness: NaN must be",
        ),
        (
            Arrivals {
                burstiness: Some(2.0),
                ..Arrivals::poisson(1)
            },
            "scenario.burstiness: only arrival = \"gamma\"",
        ),
        (
            Arrivals {
                seed: Some(3),
                ..Arrivals::default()
            },
            "scenario.seed: uniform arrivals are not random",
        ),
    ];
    for (a, want) in cases {
        let e = errs(a);
        assert_eq!(e.len(), 1, "{a:?}: {e:?}");
        assert!(e[0].starts_with(want), "{a:?}: {e:?}");
    }
    assert_eq!(errs(Arrivals::gamma(0.1, 1)), Vec::<String>::new());
    assert_eq!(errs(Arrivals::poisson(1)), Vec::<String>::new());
}

#[test]
fn closed_model_executors_refuse_arrival_keys_by_name() {
    let table = |text: &str| text.parse::<toml::Table>().unwrap();
    let e = closed_model_misuse(&table(
        "executor = \"constant-vus\"\nvus = 2\nduration = \"5s\"\narrival = \"poisson\"\nseed = 1\n",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("scenario.arrival: only the arrival-rate executors"));
    assert!(e[1].starts_with("scenario.seed:"));
    assert!(closed_model_misuse(&table(
        "executor = \"ramping-arrival-rate\"\narrival = \"poisson\"\n"
    ))
    .is_empty());
    assert!(closed_model_misuse(&table("executor = \"ramping-vus\"\n")).is_empty());
}
