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
//! above all the target, whose memory is what is measured. So every spawn goes through
//! [`restore_in_children`], which gives the child back the setting the controller found;
//! a child `barrage run` (of a sweep or a characterization) then finds that setting too.
use std::os::unix::process::CommandExt as _;
use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not changed by this process; 1 + the setting it found (1: allowed, 2: disabled).
static FOUND: AtomicU8 = AtomicU8::new(0);

/// Disables THP for this process, remembering the setting found for its children. Call
/// first thing: what is already resident keeps its pages. A kernel without the call
/// (before 3.15) leaves things as they were, with a debug line.
#[allow(unsafe_code)]
pub fn disable_for_this_process() {
    // SAFETY: prctl with integer arguments only; no memory is passed.
    let r = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
    if r < 0 {
        tracing::debug!("transparent huge pages left as they are: PR_GET_THP_DISABLE failed");
        return;
    }
    // SAFETY: as above.
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "transparent huge pages left as they are: PR_SET_THP_DISABLE failed"
        );
        return;
    }
    FOUND.store(1 + u8::from(r > 0), Ordering::Relaxed);
}

/// Gives `cmd`'s child, between fork and exec, the setting this process found (nothing
/// when it changed none). Call it on every command the controller spawns.
#[allow(unsafe_code)]
pub fn restore_in_children(cmd: &mut std::process::Command) {
    let value = match FOUND.load(Ordering::Relaxed) {
        0 => return,
        v => libc::c_ulong::from(v - 1),
    };
    // SAFETY: the hook makes one system call (async-signal-safe) with integer arguments
    // and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_THP_DISABLE, value, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
