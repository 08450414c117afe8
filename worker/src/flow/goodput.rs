//! `flow_goodput`: whether an iteration was good, i.e. every check passed and every
//! request, stream and the flow itself met its objective (the plan's `[slo]`, see
//! `barrage_core::plan::SloConfig`).
//!
//! The objectives are compiled once per run into one entry per step, by step index: the
//! strictest objective naming the step (its name, its metric, `http_req_duration`) and the
//! stream objectives when it is an SSE step. Judging a request is then an index and two or
//! three comparisons of durations the step measured anyway: no name is looked up per
//! request, and nothing is recorded until the iteration's one `flow_goodput` sample.
use std::time::Duration;

use barrage_core::metrics::builtin;
use barrage_core::plan::{Objective, SloScope};

use super::check::SseSummary;
use super::step::{ResponseKind, Step};
use crate::http::Exchange;

/// One step's objectives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct StepObjectives {
    /// Each request of the step: send → end of body.
    request: Option<Duration>,
    /// Send → first SSE event (SSE steps only).
    first_event: Option<Duration>,
    /// Send → first event with AI content (SSE steps only); a stream without one misses it.
    first_token: Option<Duration>,
}

/// A flow's objectives, compiled against its steps.
#[derive(Debug, Clone, Default)]
pub(crate) struct Objectives {
    /// By step index.
    steps: Vec<StepObjectives>,
    /// The whole iteration, from its intended start.
    flow: Option<Duration>,
}

fn tighter(a: Option<Duration>, b: Duration) -> Option<Duration> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl Objectives {
    /// `objectives` as [`barrage_core::Plan::slo_objectives`] gives them, for `steps`.
    pub(crate) fn compile(objectives: &[Objective], steps: &[Step]) -> Objectives {
        let mut out = Objectives {
            steps: vec![StepObjectives::default(); steps.len()],
            flow: None,
        };
        for o in objectives {
            match o.scope {
                SloScope::Flow => out.flow = tighter(out.flow, o.within),
                scope => {
                    for (step, slot) in steps.iter().zip(&mut out.steps) {
                        let sse = step.response == ResponseKind::Sse;
                        match scope {
                            SloScope::Request
                                if o.name == step.operation
                                    || o.name == step.trend
                                    || o.name == builtin::HTTP_REQ_DURATION =>
                            {
                                slot.request = tighter(slot.request, o.within)
                            }
                            SloScope::FirstEvent if sse => {
                                slot.first_event = tighter(slot.first_event, o.within)
                            }
                            SloScope::FirstToken if sse => {
                                slot.first_token = tighter(slot.first_token, o.within)
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        out
    }

    /// Whether step `index`'s request (and its stream, `sse` being what the request read)
    /// met the step's objectives.
    pub(crate) fn request_met(&self, index: usize, ex: &Exchange, sse: &SseSummary) -> bool {
        let Some(o) = self.steps.get(index) else {
            return true;
        };
        let within = |limit: Option<Duration>, took: Option<Duration>| match limit {
            None => true,
            Some(limit) => took.is_some_and(|t| t <= limit),
        };
        within(o.request, Some(ex.duration))
            && within(o.first_event, sse.first_event)
            && within(o.first_token, sse.first_token)
    }

    /// Whether a flow that took `took` (from its intended start) met the flow objective.
    pub(crate) fn flow_met(&self, took: Duration) -> bool {
        self.flow.is_none_or(|limit| took <= limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::template::VarTable;
    use barrage_core::{Plan, Profile};

    fn compiled(plan: &Plan) -> (Vec<Step>, Objectives) {
        let mut table = VarTable::new();
        let steps = super::super::compile_plan_flow(plan, &mut table)
            .unwrap()
            .steps;
        let o = Objectives::compile(&plan.slo_objectives(), &steps);
        (steps, o)
    }

    fn step_of<'a>(steps: &[Step], o: &'a Objectives, name: &str) -> &'a StepObjectives {
        let i = steps.iter().position(|s| s.operation == name).unwrap();
        &o.steps[i]
    }

    #[test]
    fn objectives_land_on_the_steps_they_name() {
        let mut plan = Plan::profile(Profile::Smoke);
        plan.slo.0.insert("cleanup".into(), "300ms".into());
        plan.slo.0.insert("delete_thread".into(), "100ms".into());
        plan.slo.0.insert("stream_first_token".into(), "1s".into());
        plan.slo.0.insert("http_req_duration".into(), "2s".into());
        plan.validate().unwrap();
        let (steps, o) = compiled(&plan);
        let ms = |n| Some(Duration::from_millis(n));
        // the seed's defaults, and the strictest of several names
        assert_eq!(step_of(&steps, &o, "create_thread").request, ms(500));
        assert_eq!(step_of(&steps, &o, "run_wait").request, ms(2000));
        assert_eq!(step_of(&steps, &o, "get_state").request, ms(2000));
        assert_eq!(step_of(&steps, &o, "store_delete").request, ms(300));
        assert_eq!(step_of(&steps, &o, "delete_thread").request, ms(100));
        // stream objectives only on the stream step
        assert_eq!(step_of(&steps, &o, "run_stream").first_token, ms(1000));
        assert_eq!(step_of(&steps, &o, "run_wait").first_token, None);
        assert_eq!(o.flow, ms(8000));
        assert!(o.flow_met(Duration::from_secs(8)));
        assert!(!o.flow_met(Duration::from_millis(8001)));
    }

    #[test]
    fn a_request_is_judged_by_its_durations() {
        let mut plan = Plan::profile(Profile::Smoke);
        plan.slo.0.insert("stream_first_token".into(), "1s".into());
        let (steps, o) = compiled(&plan);
        let run_wait = steps
            .iter()
            .position(|s| s.operation == "run_wait")
            .unwrap();
        let stream = steps
            .iter()
            .position(|s| s.operation == "run_stream")
            .unwrap();
        let ex = |ms| Exchange {
            status: 200,
            error: None,
            waiting: Duration::from_millis(ms),
            duration: Duration::from_millis(ms),
            sent: 0,
            received: 0,
            retried: false,
        };
        let mut sse = SseSummary::default();
        assert!(o.request_met(run_wait, &ex(4999), &sse));
        assert!(!o.request_met(run_wait, &ex(5001), &sse));
        // a stream without AI content missed its first-token objective
        assert!(!o.request_met(stream, &ex(10), &sse));
        sse.first_token = Some(Duration::from_millis(900));
        assert!(o.request_met(stream, &ex(10), &sse));
        sse.first_token = Some(Duration::from_millis(1100));
        assert!(!o.request_met(stream, &ex(10), &sse));
        // no objectives at all: every request meets them
        let none = Objectives::compile(&[], &steps);
        assert!(none.request_met(run_wait, &ex(60_000), &SseSummary::default()));
        assert!(none.flow_met(Duration::from_secs(3600)));
    }
}
