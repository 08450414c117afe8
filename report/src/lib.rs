//! barrage's reports: charts of one run, several runs or a runtime × tier sweep
//! (`barrage report`), regression checks between two sets of runs (`barrage compare`), and
//! the seed's jq recipes as one command (`barrage summarize`).
//!
//! | module        | principal types                       | what for                                    |
//! |---------------|---------------------------------------|---------------------------------------------|
//! | [`figures`]   | [`ChartData`], [`RunFigures`]         | the plain numbers every chart is drawn from |
//! | [`charts`]    | `BarChart`, `LineChart`, `SpectrumChart`, `Chart` | plotters drawings on any backend |
//! | [`animation`] | [`animation::Animation`]              | the sweep's bars growing tier by tier: GIF, MP4 |
//! | [`html`]      | `render`                              | the self-contained `report.html`            |
//! | [`write`]     | [`write_report`]                      | the output folder                            |
//! | [`k6`]        | [`k6::K6Run`]                         | k6 NDJSON (`--out json`) read back          |
//! | [`input`]     | [`input::ResultsFile`], [`input::Measured`] | either kind of file; what compare measures |
//! | [`stats`]     | `welch_ci_weighted`, `percentile_diff_ci` | 95 % intervals: per-interval, bootstrap     |
//! | [`compare`]   | [`compare::Comparison`], `Budgets`    | regressions between two sets of runs        |
//! | [`summarize`] | [`summarize::Summarized`]             | the seed's jq recipes                       |
//! | [`capacity`]  | [`capacity::CapacityCurve`]           | `barrage characterize`'s load curve chart   |
//!
//! Data flow: summaries → [`ChartData`] (percentiles from the stored HDR histograms) →
//! `charts::catalog` (titles, units, values) → SVG in the HTML, PNG files, GIF/MP4 frames.
#![forbid(unsafe_code)]

pub mod animation;
pub mod capacity;
pub mod charts;
pub mod compare;
pub mod figures;
pub mod html;
pub mod input;
pub mod k6;
pub mod stats;
pub mod summarize;
pub mod write;

pub use figures::{ChartData, RunFigures};
pub use write::{write_report, ReportFiles};

use std::path::PathBuf;

/// Why a report, comparison or summary could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Summary(#[from] barrage_core::summary::SummaryError),
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Input(String),
}
