//! The worker's thread: pinned to one CPU core (`--core N`), running one single-threaded
//! tokio runtime with a `LocalSet` for the VUs. Failing to pin is a warning, not an error:
//! the run goes on, unpinned.
use anyhow::Context as _;
use tracing::warn;

/// Pins the calling thread (when `core` is given) and builds the runtime the VUs run on:
/// current-thread, every driver enabled, and the `LocalSet` their `!Send` tasks live in.
pub fn vu_runtime(
    core: Option<usize>,
) -> anyhow::Result<(tokio::runtime::Runtime, tokio::task::LocalSet)> {
    if let Some(core) = core {
        pin_current_thread(core);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    Ok((runtime, tokio::task::LocalSet::new()))
}

/// Pins the calling thread to `core`; returns whether it worked.
pub fn pin_current_thread(core: usize) -> bool {
    let Some(ids) = core_affinity::get_core_ids() else {
        warn!(core, "cannot list this host's cores; running unpinned");
        return false;
    };
    let Some(id) = ids.into_iter().find(|c| c.id == core) else {
        warn!(core, "no such core; running unpinned");
        return false;
    };
    if core_affinity::set_for_current(id) {
        tracing::info!(core, "pinned to core");
        true
    } else {
        warn!(
            core,
            "pinning failed (no permission or a cpuset without it); running unpinned"
        );
        false
    }
}
