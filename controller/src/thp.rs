//! Transparent huge pages: off for barrage's controller processes, and back as they were
//! for every process they start.
//!
//! Why: mimalloc advises its arenas `MADV_HUGEPAGE`, so with the kernel's THP in `madvise`
//! mode (Debian's default) or `always`, the controller's heap lives in 2 MiB pages, and
//! khugepaged (its default `max_ptes_none` of 511) collapses any 2 MiB range with a single
//! page in use into a whole huge page. A soak's controller then holds several times its
//! live heap, and its RSS steps up by 2 MiB units whenever khugepaged passes, with no
//! allocation behind the step: exactly what a soak's flat-memory verdict must not see
//! (bench/RESULTS.md, "the controller's live heap beside its RSS"). `PR_SET_THP_DISABLE`
//! puts the process's later faults on 4 KiB pages and takes it out of khugepaged's scan.
//!
//! The setting is inherited across fork and exec, and the processes the controller starts
//! are not its own to tune: workers (their CPU is the rig's budget), the mock LLM, and
//! above all the target, whose memory is what is measured. So each spawn restores, in the
//! child, the setting the controller found ([`child_value`]); a `barrage run` started by a
//! sweep or a characterization receives it through [`INHERITED_ENV`].
use std::sync::atomic::{AtomicU8, Ordering};

/// Carries the setting found at the top of a chain of barrage controllers to a child one
/// (`0`: THP allowed, `1`: disabled).
pub const INHERITED_ENV: &str = "BARRAGE_THP_INHERITED";

/// 0: not changed by this process; 1 + the setting it found (1: allowed, 2: disabled).
static FOUND: AtomicU8 = AtomicU8::new(0);

/// Disables THP for this process, remembering the setting found (or passed down in
/// [`INHERITED_ENV`]) for its children. Call first thing: what is already resident keeps
/// its pages. A kernel
/// without the call (before 3.15) leaves things as they were, with a debug line.
#[allow(unsafe_code)]
pub fn disable_for_this_process() {
    let passed = std::env::var(INHERITED_ENV)
        .ok()
        .and_then(|v| match v.trim() {
            "0" => Some(0),
            "1" => Some(1),
            _ => None,
        });
    // SAFETY: prctl with integer arguments only; no memory is passed.
    let found = passed.or_else(|| {
        let r = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        (r >= 0).then_some(u8::from(r > 0))
    });
    let Some(found) = found else {
        tracing::debug!("transparent huge pages left as they are: PR_GET_THP_DISABLE failed");
        return;
    };
    // SAFETY: as above.
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "transparent huge pages left as they are: PR_SET_THP_DISABLE failed"
        );
        return;
    }
    FOUND.store(1 + found, Ordering::Relaxed);
}

/// The value a child's `PR_SET_THP_DISABLE` takes back (what this process found), or
/// `None` when this process changed nothing. Read it before the fork: the pre-exec hook
/// only passes it to `prctl`.
pub fn child_value() -> Option<libc::c_ulong> {
    match FOUND.load(Ordering::Relaxed) {
        0 => None,
        v => Some(libc::c_ulong::from(v - 1)),
    }
}

/// [`INHERITED_ENV`]'s value for a child `barrage` controller, when this process changed
/// the setting.
pub fn inherited_env() -> Option<(&'static str, &'static str)> {
    child_value().map(|v| (INHERITED_ENV, if v == 0 { "0" } else { "1" }))
}

/// In a child between fork and exec: the setting the controller found. Async-signal-safe
/// (one system call).
///
/// # Safety
/// Call only in a pre-exec hook, with `value` from [`child_value`].
#[allow(unsafe_code)]
pub unsafe fn restore_in_child(value: Option<libc::c_ulong>) -> std::io::Result<()> {
    if let Some(v) = value {
        if libc::prctl(libc::PR_SET_THP_DISABLE, v, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
