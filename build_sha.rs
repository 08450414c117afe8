//! Records the git sha of the build (`git rev-parse --short HEAD`, or "unknown") for the
//! results' metadata, as `BARRAGE_GIT_SHA`. The build script of the two crates whose code
//! writes summaries (`barrage-worker`: standalone runs; `barrage-controller`), not of core:
//! a commit then rebuilds those two, not every crate that depends on core.
use std::process::Command;

fn main() {
    let sha = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BARRAGE_GIT_SHA={sha}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
    println!("cargo:rerun-if-changed=../build_sha.rs");
}
