//! The page: one self-contained HTML file (`page.html`: no CDN, no external script), served
//! with the state of the moment embedded, so it shows figures the instant it loads (and
//! with scripts that run only once, such as a screenshot tool); then it follows the SSE
//! stream (`/events`) and re-renders each second with the same function.
use super::state::LiveState;

const TEMPLATE: &str = include_str!("page.html");

/// JSON safe inside a `<script>` element: no `<` at all, so no `</script>` or `<!--`.
fn script_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
}

/// The page with `state` embedded.
pub fn render(state: &LiveState) -> String {
    TEMPLATE.replacen("__STATE__", &script_json(state), 1)
}

#[cfg(test)]
mod tests {
    use super::super::state::{LiveState, RunInfo};
    use super::*;

    #[test]
    fn the_state_cannot_close_its_script_element() {
        let s = LiveState::new(RunInfo {
            name: "</script><script>alert(1)</script>".into(),
            ..RunInfo::default()
        });
        let html = render(&s);
        assert_eq!(html.matches("</script>").count(), 2, "{html}");
        assert!(html.contains("\\u003c/script>\\u003cscript>alert(1)"));
        assert!(!html.contains("__STATE__"));
        // self-contained: nothing is fetched from elsewhere
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
