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
use crate::cli::{Cli, Command, PlanArgs, WorkerSideArgs};
use clap::Parser as _;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

/// Remote workers: `barrage controller`'s worker-facing flags, the same clap struct
/// ([`WorkerSideArgs`]), so a flag added to the controller is here too. Without
/// `--listen` the plateaus run local workers and the other flags are refused.
pub type RemoteArgs = WorkerSideArgs;

/// The flags of [`RemoteArgs`] (not to be given after `--`).
pub fn controller_flags() -> Vec<String> {
    WorkerSideArgs::flag_names()
}

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
            // every flag of the block but --listen/--expect-workers (above): so one added
            // to `barrage controller` is refused here too without --listen
            let given = self.to_flags();
            for flag in WorkerSideArgs::flag_names() {
                let set = flag != "--listen" && flag != "--expect-workers" && given.contains(&flag);
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
        let controller_flags = RemoteArgs {
            listen: Some(listen),
            expect_workers: Some(expect),
            ..self.clone()
        }
        .to_flags();
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
    use std::time::Duration;

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
