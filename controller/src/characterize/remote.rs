//! `barrage characterize --listen ADDR --expect-workers N`: the plateaus run on remote
//! workers. Each plateau is then a child `barrage controller` on that one address (the
//! flags and checks are `barrage controller`'s), and the workers are started once, with
//! `barrage worker --controller URL --serve`: a serving worker joins run after run, so it
//! takes part in every plateau's controller in turn (`barrage_worker::serve`).
//!
//! Why a controller per plateau rather than one controller running the plateaus in
//! sequence: a plateau stays exactly the run a user gets from `barrage controller` with its
//! plan (its own summary, the same validity and loss handling), as local plateaus are
//! `barrage run`s; what a fleet needs between runs is on the worker's side, not a second
//! kind of controller.
//!
//! Everything is checked before the first plateau: the flags below, and `barrage
//! controller`'s own validation of what each plateau's controller will get (token file,
//! TLS PEM files, no plan secret in clear text beyond loopback, the flags after `--`).
use crate::cli::{Cli, Command, PlanArgs};
use barrage_core::duration::parse_duration;
use clap::{Args, Parser as _};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Remote workers (the flags are `barrage controller`'s).
#[derive(Debug, Clone, Default, Args)]
pub struct RemoteArgs {
    /// Run the plateaus on remote workers: each plateau is a `barrage controller`
    /// listening here (a fixed port), joined by workers started with `barrage worker
    /// --controller URL --serve`. Without it, each plateau runs local workers.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// With --listen: the workers every plateau waits for.
    #[arg(long, value_name = "N")]
    pub expect_workers: Option<usize>,
    /// With --listen: file holding the shared worker token (required beyond loopback).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// With --listen: TLS certificate (PEM) for the worker-facing port.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// With --listen: TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// With --listen: send the plan's auth secrets to workers beyond loopback without TLS.
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// With --listen: accept workers of another barrage version.
    #[arg(long)]
    pub allow_version_mismatch: bool,
    /// With --listen: how long each plateau waits for its workers [default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub join_timeout: Option<Duration>,
}

/// The flags above as `barrage controller` takes them (also the ones not to give after `--`).
pub const CONTROLLER_FLAGS: &[&str] = &[
    "--listen",
    "--expect-workers",
    "--token-file",
    "--tls-cert",
    "--tls-key",
    "--insecure-plaintext",
    "--allow-version-mismatch",
    "--join-timeout",
];

/// Remote mode, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Remote {
    pub listen: SocketAddr,
    pub expect_workers: usize,
    /// `--tls-cert`/`--tls-key` given: workers dial `https://`.
    pub tls: bool,
    /// `--insecure-plaintext` was needed: secrets cross the network in clear text.
    pub plaintext_secrets: bool,
    /// Every plateau's `barrage controller` gets these (then the flags after `--`).
    pub controller_flags: Vec<String>,
}

impl RemoteArgs {
    /// The remote flags, checked among themselves: `None` without `--listen` (local
    /// workers). Each problem names its flag and the fix.
    pub fn check(&self) -> Result<Option<(SocketAddr, usize)>, Vec<String>> {
        let mut errors = Vec::new();
        let Some(listen) = self.listen else {
            if self.expect_workers.is_some() {
                errors.push("--expect-workers needs --listen ADDR (where the remote workers join, e.g. 0.0.0.0:7400); without --listen the plateaus run local workers (`-- --workers N`)".into());
            }
            for (flag, set) in [
                ("--token-file", self.token_file.is_some()),
                ("--tls-cert", self.tls_cert.is_some()),
                ("--tls-key", self.tls_key.is_some()),
                ("--insecure-plaintext", self.insecure_plaintext),
                ("--allow-version-mismatch", self.allow_version_mismatch),
                ("--join-timeout", self.join_timeout.is_some()),
            ] {
                if set {
                    errors.push(format!(
                        "{flag} is for remote workers: add --listen ADDR (where they join, e.g. 0.0.0.0:7400) and --expect-workers N, or drop {flag} (local workers: `-- --workers N`)"
                    ));
                }
            }
            return if errors.is_empty() {
                Ok(None)
            } else {
                Err(errors)
            };
        };
        if listen.port() == 0 {
            errors.push(format!(
                "--listen {listen}: give a fixed port, e.g. {}:7400; the workers dial the same address for every plateau",
                listen.ip()
            ));
        }
        let expect = match self.expect_workers {
            None => {
                errors.push(
                    "--listen needs --expect-workers N: how many workers each plateau waits for"
                        .into(),
                );
                0
            }
            Some(0) => {
                errors.push("--expect-workers 0: at least 1 worker".into());
                0
            }
            Some(n) => n,
        };
        if errors.is_empty() {
            Ok(Some((listen, expect)))
        } else {
            Err(errors)
        }
    }

    /// The flags of every plateau's `barrage controller`.
    fn controller_flags(&self, listen: SocketAddr, expect: usize) -> Vec<String> {
        let mut f = vec![
            "--listen".to_string(),
            listen.to_string(),
            "--expect-workers".into(),
            expect.to_string(),
        ];
        let path = |flag: &str, p: &Option<PathBuf>, f: &mut Vec<String>| {
            if let Some(p) = p {
                f.extend([flag.to_string(), p.display().to_string()]);
            }
        };
        path("--token-file", &self.token_file, &mut f);
        path("--tls-cert", &self.tls_cert, &mut f);
        path("--tls-key", &self.tls_key, &mut f);
        if self.insecure_plaintext {
            f.push("--insecure-plaintext".into());
        }
        if self.allow_version_mismatch {
            f.push("--allow-version-mismatch".into());
        }
        if let Some(d) = self.join_timeout {
            f.extend([
                "--join-timeout".into(),
                barrage_core::duration::format_duration(d),
            ]);
        }
        f
    }

    /// Remote mode checked as `barrage controller` checks its flags: what each plateau's
    /// controller will get (`plan` the user's plan flags, `run_flags` those after `--`,
    /// `results_dir` where the plateaus go). `embedded`: no target is named.
    pub fn validate(
        &self,
        plan: &PlanArgs,
        embedded: bool,
        run_flags: &[String],
        results_dir: &Path,
    ) -> Result<Option<Remote>, String> {
        let Some((listen, expect)) = self.check().map_err(|e| e.join("\n  "))? else {
            return Ok(None);
        };
        if embedded {
            return Err(format!(
                "--listen {listen}: remote workers need a target they can reach; give --target URL (or a plan with target.url). Only local plateaus start the embedded reference runtime"
            ));
        }
        let controller_flags = self.controller_flags(listen, expect);
        let mut argv: Vec<String> = vec!["barrage".into(), "controller".into()];
        argv.extend(controller_flags.iter().cloned());
        argv.extend(["--results-dir".into(), results_dir.display().to_string()]);
        argv.extend(run_flags.iter().cloned());
        let mut args = match Cli::try_parse_from(&argv).map(|c| c.command) {
            Ok(Command::Controller(a)) => a,
            Ok(_) => unreachable!("parsed as `barrage controller`"),
            Err(e) => {
                return Err(format!(
                    "the flags after `--` go to every plateau's `barrage controller` (with --listen), which refuses them: {}",
                    e.render().to_string().lines().next().unwrap_or_default()
                ))
            }
        };
        args.plan = plan.clone();
        let run = crate::config::controller_run(&args).map_err(|e| e.to_string())?;
        Ok(Some(Remote {
            listen,
            expect_workers: expect,
            tls: self.tls_cert.is_some(),
            plaintext_secrets: run.plaintext_secrets,
            controller_flags,
        }))
    }
}

impl Remote {
    /// The `--controller` URL workers are started with (the host is the listen address's,
    /// or a placeholder when it listens on every interface).
    pub fn worker_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let port = self.listen.port();
        if self.listen.ip().is_unspecified() {
            format!("{scheme}://<this host>:{port}")
        } else {
            format!("{scheme}://{}", self.listen)
        }
    }
}

impl fmt::Display for Remote {
    /// The banner's workers line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "workers: remote: each plateau is a `barrage controller` on {} waiting for {} worker(s); start them once with `barrage worker --controller {} --serve`",
            self.listen,
            self.expect_workers,
            self.worker_url()
        )?;
        if self.plaintext_secrets {
            write!(
                f,
                "\n--insecure-plaintext: the join token and the plan's auth secrets go to workers beyond loopback in clear text"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_args(target: Option<&str>) -> PlanArgs {
        let Command::Run(r) = Cli::try_parse_from(["barrage", "run"]).unwrap().command else {
            unreachable!()
        };
        PlanArgs {
            target: target.map(String::from),
            ..r.plan
        }
    }

    fn remote(listen: Option<&str>, expect: Option<usize>) -> RemoteArgs {
        RemoteArgs {
            listen: listen.map(|l| l.parse().unwrap()),
            expect_workers: expect,
            ..Default::default()
        }
    }

    #[test]
    fn remote_flags_need_listen_and_expect_workers() {
        assert_eq!(remote(None, None).check(), Ok(None));
        let e = remote(None, Some(2)).check().unwrap_err().join("\n");
        assert!(e.contains("--expect-workers needs --listen ADDR"), "{e}");
        let mut r = remote(None, None);
        r.token_file = Some("t".into());
        r.join_timeout = Some(Duration::from_secs(5));
        let e = r.check().unwrap_err().join("\n");
        assert!(
            e.contains("--token-file") && e.contains("--join-timeout"),
            "{e}"
        );
        let e = remote(Some("127.0.0.1:7400"), None)
            .check()
            .unwrap_err()
            .join("\n");
        assert!(e.contains("--listen needs --expect-workers N"), "{e}");
        let e = remote(Some("127.0.0.1:0"), Some(0))
            .check()
            .unwrap_err()
            .join("\n");
        assert!(
            e.contains("fixed port") && e.contains("--expect-workers 0"),
            "{e}"
        );
        assert_eq!(
            remote(Some("127.0.0.1:7400"), Some(2)).check(),
            Ok(Some(("127.0.0.1:7400".parse().unwrap(), 2)))
        );
    }

    #[test]
    fn remote_mode_is_checked_as_barrage_controller_checks_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = Some("http://127.0.0.1:9");
        let r = remote(Some("127.0.0.1:7400"), Some(2));
        // the embedded target cannot serve remote workers
        let e = r
            .validate(&plan_args(None), true, &[], dir.path())
            .unwrap_err();
        assert!(e.contains("--target URL"), "{e}");
        // beyond loopback a token is needed, as for `barrage controller`
        let wide = remote(Some("0.0.0.0:7400"), Some(2));
        let e = wide
            .validate(&plan_args(target), false, &[], dir.path())
            .unwrap_err();
        assert!(e.contains("--token-file"), "{e}");
        // flags after `--` must be `barrage controller`'s
        let e = r
            .validate(
                &plan_args(target),
                false,
                &["--workers".into(), "2".into()],
                dir.path(),
            )
            .unwrap_err();
        assert!(e.contains("after `--`") && e.contains("--workers"), "{e}");
        let ok = r
            .validate(
                &plan_args(target),
                false,
                &["--on-worker-loss".into(), "fail".into()],
                dir.path(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            ok.controller_flags,
            ["--listen", "127.0.0.1:7400", "--expect-workers", "2"]
        );
        assert_eq!(ok.worker_url(), "http://127.0.0.1:7400");
        let banner = ok.to_string();
        assert!(
            banner.contains("remote")
                && banner.contains("127.0.0.1:7400")
                && banner.contains("2 worker"),
            "{banner}"
        );
        assert_eq!(
            remote(None, None).validate(&plan_args(None), true, &[], dir.path()),
            Ok(None)
        );
    }
}
