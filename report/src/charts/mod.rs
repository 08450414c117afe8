//! The charts, drawn with `plotters` onto any drawing backend: the report renders them to
//! SVG (inline in `report.html`) and PNG, the sweep animation to RGB frames, and the live
//! dashboard can draw the same functions from live data.
//!
//! Each chart is a function of plain data and a drawing area:
//!
//! | function                     | data                                   | what it shows                      |
//! |------------------------------|----------------------------------------|------------------------------------|
//! | [`bars::draw`]               | [`BarChart`] (groups × series)          | throughput, latency, errors by tier |
//! | [`lines::draw`]              | [`LineChart`] (x/y series)              | a run over time                    |
//! | [`spectrum::draw`]           | [`SpectrumChart`] (percentile → value)  | latency distribution, HdrHistogram style |
//!
//! The chart data are built from [`crate::ChartData`] by the functions of [`catalog`] (the
//! report's list of charts); the titles, units and values a chart shows are fields of its
//! data, so tests check those instead of pixels.
//!
//! Text is drawn with DejaVu Sans, embedded (registered once by [`fonts`]), so a PNG or GIF
//! renders the same on a machine without fonts.
pub mod bars;
pub mod catalog;
pub mod lines;
pub mod render;
pub mod spectrum;

pub use bars::BarChart;
pub use lines::{LineChart, LineSeries};
pub use spectrum::{SpectrumChart, SpectrumSeries};

use plotters::chart::{ChartContext, SeriesLabelPosition};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::{DrawingArea, DrawingBackend, IntoFont, Text};
use plotters::style::{Color, RGBColor, BLACK, WHITE};
use std::sync::Once;

/// A drawing error of any backend, as text (plotters' error is generic over the backend).
#[derive(Debug, thiserror::Error)]
#[error("drawing the chart failed: {0}")]
pub struct ChartError(pub String);

impl ChartError {
    pub(crate) fn from<E: std::fmt::Debug>(e: E) -> ChartError {
        ChartError(format!("{e:?}"))
    }
}

/// Registers the embedded fonts with plotters (idempotent; every chart calls it).
pub fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use plotters::style::{register_font, FontStyle};
        // the bytes are a valid TTF shipped by the `dejavu` crate
        let _ = register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
        let _ = register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Every chart's frame: the fonts, a white background and the caption (hardware, tier) along
/// the bottom; returns the area above the caption, where the chart draws.
pub fn framed<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
) -> Result<DrawingArea<DB, Shift>, ChartError> {
    fonts();
    area.fill(&WHITE).map_err(ChartError::from)?;
    let (_, h) = area.dim_in_pixel();
    let (body, foot) = area.split_vertically(h.saturating_sub(22));
    foot.draw(&Text::new(
        caption.to_string(),
        (8, 4),
        ("sans-serif", 13).into_font().color(&RGBColor(80, 80, 80)),
    ))
    .map_err(ChartError::from)?;
    Ok(body)
}

/// Every chart's legend, at `position`.
pub fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    ctx: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), ChartError> {
    ctx.configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(ChartError::from)
}

/// Series colours, in order (colour-blind-safe Okabe–Ito palette).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

/// The colour of series `i`.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A number as charts label it: 3 significant digits, no exponent below a million.
pub fn label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
