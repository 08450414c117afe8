//! Cleanup steps: the flow's own, after its main steps, and a group's, at the end of each
//! turn or copy of it. Why a group has its own: a fan-out copy creates its own thread, and
//! when the copy fails only that copy knows the thread's id (its captures stay in its
//! copy), so the copy deletes it before it ends instead of leaking it.
use std::ops::Range;

use reqwest::header::HeaderValue;

use super::IterState;
use crate::flow::AgentFlow;
use crate::http::Cancelled;
use crate::sample::IterationCtx;

impl AgentFlow {
    /// The cleanup steps of `range` (of a group when `grouped`, else the flow's own), in
    /// order, each when every variable it `requires` is set; those variables are unset
    /// after it, so a resource is deleted once. The first failure (step, reason).
    pub(super) async fn run_cleanup(
        &self,
        range: Range<usize>,
        grouped: bool,
        st: &mut IterState,
        ctx: &IterationCtx<'_>,
        auth: Option<&HeaderValue>,
    ) -> Result<Option<(String, String)>, Cancelled> {
        let mut failure = None;
        for i in range {
            let step = &self.steps[i];
            if !step.cleanup
                || step.grouped != grouped
                || !step.requires.iter().all(|&v| st.vars.is_set(v))
            {
                continue;
            }
            let end = self.run_step(i, step, st, ctx, auth).await?;
            if grouped {
                for &v in &step.requires {
                    st.vars.unset(v);
                }
            }
            if !end.passed && failure.is_none() {
                failure = Some((step.operation.clone(), end.reason.unwrap_or_default()));
            }
        }
        Ok(failure)
    }

    /// One turn or copy of a group: its main steps in order (up to the first failure),
    /// then its cleanup steps; the first failure (step, reason).
    pub(super) async fn run_group_body(
        &self,
        range: Range<usize>,
        st: &mut IterState,
        ctx: &IterationCtx<'_>,
        auth: Option<&HeaderValue>,
    ) -> Result<Option<(String, String)>, Cancelled> {
        let failure = self.run_steps(range.clone(), st, ctx, auth).await?;
        let cleanup = self.run_cleanup(range, true, st, ctx, auth).await?;
        Ok(failure.or(cleanup))
    }
}
