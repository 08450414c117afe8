//! Pinning the worker's thread to one CPU core (`--core N`). Failing to pin is a warning,
//! not an error: the run goes on, unpinned.
use tracing::warn;

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
