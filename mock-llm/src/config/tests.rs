//! Tests of the flags, the environment and their validation.
use super::*;
use std::collections::HashMap;

fn with_env(args: Args, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    args.into_config_with_env(move |name| env.get(name).cloned())
}

#[test]
fn defaults_without_flags_or_env() {
    let c = with_env(Args::default(), &[]).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.port, 11434);
    assert_eq!(c.delay, Duration::from_millis(10));
    assert_eq!(c.stream_delay, Duration::from_millis(5));
    assert_eq!(c.model, "mock-gpt-4o");
    assert_eq!(c.response.split_whitespace().count(), 42);
    assert_eq!(c.max_body_bytes, 4 << 20);
    assert_eq!(c.mode, Mode::Fixed, "today's fixed delays stay the default");
    assert!(!c.reuse_port, "a port is not shared unless asked");
}

#[test]
fn valid_env_values() {
    // (variable, value, check)
    type Check = fn(&Config) -> bool;
    let cases: &[(&str, &str, Check)] = &[
        ("MOCK_LLM_PORT", "0", |c| c.port == 0),
        ("MOCK_LLM_PORT", "65535", |c| c.port == 65535),
        ("MOCK_LLM_REUSE_PORT", "true", |c| c.reuse_port),
        ("MOCK_LLM_REUSE_PORT", " 1 ", |c| c.reuse_port),
        ("MOCK_LLM_REUSE_PORT", "FALSE", |c| !c.reuse_port),
        ("MOCK_LLM_HOST", "::1", |c| c.host.to_string() == "::1"),
        ("MOCK_LLM_HOST", "[::1]", |c| c.host.to_string() == "::1"),
        ("MOCK_LLM_HOST", "localhost", |c| {
            c.host.to_string() == "127.0.0.1"
        }),
        ("MOCK_LLM_DELAY_MS", "0", |c| c.delay.is_zero()),
        ("MOCK_LLM_STREAM_DELAY_MS", " 7 ", |c| {
            c.stream_delay == Duration::from_millis(7)
        }),
        ("MOCK_LLM_JITTER_MS", "600000", |c| {
            c.jitter == Duration::from_secs(600)
        }),
        ("MOCK_LLM_TOOL_CALL_RATE", "1", |c| c.tool_call_rate == 1.0),
        ("MOCK_LLM_ERROR_RATE", "0.25", |c| c.error_rate == 0.25),
        ("MOCK_LLM_ERROR_STATUS", "503", |c| {
            c.error_status == ErrorStatus::Unavailable
        }),
        ("MOCK_LLM_ERROR_STATUS", "500", |c| {
            c.error_status.code() == 500
        }),
        ("MOCK_LLM_DISCONNECT_RATE", "1.0", |c| {
            c.disconnect_rate == 1.0
        }),
        ("MOCK_LLM_MAX_BODY_BYTES", "1", |c| c.max_body_bytes == 1),
        ("MOCK_LLM_THREADS", "1", |c| c.threads == 1),
        ("MOCK_LLM_GRACE_MS", "0", |c| c.grace.is_zero()),
        ("MOCK_LLM_MODEL", "gpt-x", |c| c.model == "gpt-x"),
        ("MOCK_LLM_MODE", "model", |c| c.mode == Mode::Model),
        ("MOCK_LLM_MODE", "fixed", |c| c.mode == Mode::Fixed),
        ("MOCK_LLM_TTFT_MS", "0", |c| c.model_settings.ttft.is_zero()),
        ("MOCK_LLM_TTFT_PER_TOKEN_US", "250", |c| {
            c.model_settings.ttft_per_token == Duration::from_micros(250)
        }),
        ("MOCK_LLM_TOKENS_PER_S", "12.5", |c| {
            c.model_settings.tokens_per_s == 12.5
        }),
        ("MOCK_LLM_MAX_CONCURRENCY", "1", |c| {
            c.model_settings.max_concurrency == 1
        }),
        ("MOCK_LLM_QUEUE_SIZE", "0", |c| {
            c.model_settings.queue_size == 0
        }),
        ("MOCK_LLM_CALL_LOG_SIZE", "0", |c| c.call_log_size == 0),
        ("MOCK_LLM_RESPONSE", "hi there", |c| {
            c.response == "hi there"
        }),
        // An empty variable counts as unset.
        ("MOCK_LLM_PORT", "", |c| c.port == 11434),
        ("MOCK_LLM_RESPONSE", "", |c| c.response == DEFAULT_RESPONSE),
    ];
    for (var, value, check) in cases {
        let c = with_env(Args::default(), &[(var, value)])
            .unwrap_or_else(|e| panic!("{var}={value:?} rejected: {e}"));
        assert!(check(&c), "{var}={value:?} gave {c:?}");
    }
}

#[test]
fn invalid_env_values_name_the_variable() {
    // (variable, value, words the accepted form must contain)
    let cases: &[(&str, &str, &str)] = &[
        ("MOCK_LLM_PORT", "abc", "0..=65535"),
        ("MOCK_LLM_PORT", "65536", "0..=65535"),
        ("MOCK_LLM_PORT", "-1", "0..=65535"),
        ("MOCK_LLM_HOST", "example", "IP address"),
        ("MOCK_LLM_REUSE_PORT", "yes", "true or false"),
        ("MOCK_LLM_DELAY_MS", "1.5", "whole milliseconds"),
        ("MOCK_LLM_DELAY_MS", "600001", "whole milliseconds"),
        ("MOCK_LLM_STREAM_DELAY_MS", "5ms", "whole milliseconds"),
        ("MOCK_LLM_JITTER_MS", "-3", "whole milliseconds"),
        ("MOCK_LLM_TOOL_CALL_RATE", "1.5", "probability"),
        ("MOCK_LLM_ERROR_RATE", "NaN", "probability"),
        ("MOCK_LLM_ERROR_RATE", "-0.1", "probability"),
        ("MOCK_LLM_ERROR_STATUS", "404", "429, 500, 503"),
        ("MOCK_LLM_ERROR_STATUS", "abc", "429, 500, 503"),
        ("MOCK_LLM_DISCONNECT_RATE", "inf", "probability"),
        ("MOCK_LLM_MAX_BODY_BYTES", "0", "bytes"),
        ("MOCK_LLM_THREADS", "0", "thread count"),
        ("MOCK_LLM_THREADS", "2000", "thread count"),
        ("MOCK_LLM_GRACE_MS", "soon", "whole milliseconds"),
        ("MOCK_LLM_RESPONSE", "   ", "at least one word"),
        ("MOCK_LLM_MODEL", "a\nb", "model name"),
        ("MOCK_LLM_MODE", "real", "`fixed` or `model`"),
        ("MOCK_LLM_TTFT_MS", "0.5", "whole milliseconds"),
        (
            "MOCK_LLM_TTFT_PER_TOKEN_US",
            "1000001",
            "whole microseconds",
        ),
        ("MOCK_LLM_TOKENS_PER_S", "0", "tokens per second"),
        ("MOCK_LLM_TOKENS_PER_S", "inf", "tokens per second"),
        ("MOCK_LLM_MAX_CONCURRENCY", "0", "generation count"),
        ("MOCK_LLM_QUEUE_SIZE", "-1", "request count"),
        ("MOCK_LLM_CALL_LOG_SIZE", "2000000", "call count"),
    ];
    for (var, value, expected) in cases {
        let err = with_env(Args::default(), &[(var, value)])
            .expect_err(&format!("{var}={value:?} accepted"));
        assert_eq!(err.problems.len(), 1, "{var}={value:?}: {err}");
        assert_eq!(err.problems[0].source, *var);
        assert!(err.problems[0].expected.contains(expected), "{var}: {err}");
        let text = err.to_string();
        assert!(text.contains(var) && text.contains("--help"), "{text}");
    }
}

#[test]
fn flag_wins_over_env_and_errors_name_the_flag() {
    let args = Args {
        port: Some("8080".into()),
        ..Args::default()
    };
    let c = with_env(args, &[("MOCK_LLM_PORT", "not-a-port")]).unwrap();
    assert_eq!(c.port, 8080);

    let args = Args {
        port: Some("x".into()),
        ..Args::default()
    };
    let err = with_env(args, &[("MOCK_LLM_PORT", "9000")]).unwrap_err();
    assert_eq!(err.problems[0].source, "--port");

    let args = Args {
        model: Some(String::new()),
        ..Args::default()
    };
    let err = with_env(args, &[]).unwrap_err();
    assert_eq!(err.problems[0].source, "--model");
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = with_env(
        Args {
            threads: Some("0".into()),
            ..Args::default()
        },
        &[("MOCK_LLM_PORT", "x"), ("MOCK_LLM_ERROR_STATUS", "418")],
    )
    .unwrap_err();
    let sources: Vec<&str> = err.problems.iter().map(|p| p.source.as_str()).collect();
    assert_eq!(
        sources,
        ["MOCK_LLM_PORT", "MOCK_LLM_ERROR_STATUS", "--threads"]
    );
}

#[test]
fn bare_reuse_port_flag_means_true() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }
    let parse = |argv: &[&str]| {
        let cli = Cli::try_parse_from(argv).unwrap();
        with_env(cli.args, &[("MOCK_LLM_REUSE_PORT", "false")])
    };
    assert!(parse(&["m", "--reuse-port"]).unwrap().reuse_port);
    assert!(
        parse(&["m", "--reuse-port", "--port", "9"])
            .unwrap()
            .reuse_port
    );
    assert!(!parse(&["m", "--reuse-port=false"]).unwrap().reuse_port);
    assert!(
        !parse(&["m"]).unwrap().reuse_port,
        "the variable applies when the flag is absent"
    );
    let err = parse(&["m", "--reuse-port=maybe"]).unwrap_err();
    assert_eq!(err.problems[0].source, "--reuse-port");
}
