//! Grouped bar charts: one group per x category (a tier, an operation), one bar per series
//! (a runtime, a run) in each group, the value written above each bar. The animation draws
//! the same chart with only the first groups grown ([`draw_progress`]), on a y axis fixed
//! to the final values so bars grow instead of the axis shrinking.
use super::{color, label, ChartError};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One bar chart's data.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// With the unit, e.g. `Throughput by tier (req/s)`.
    pub title: String,
    /// The y axis' unit, e.g. `req/s`.
    pub unit: String,
    /// The x axis' name, e.g. `tier`.
    pub x_name: String,
    /// The line under the chart: hardware and tiers.
    pub caption: String,
    /// X categories, in order.
    pub groups: Vec<String>,
    pub series: Vec<BarSeries>,
}

/// One series: a value per group (`None`: no bar).
#[derive(Debug, Clone, PartialEq)]
pub struct BarSeries {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

impl BarChart {
    /// The largest value drawn (0 when none).
    pub fn max(&self) -> f64 {
        self.series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .fold(0.0f64, |m, v| m.max(*v))
    }

    /// True when no series has any value.
    pub fn is_empty(&self) -> bool {
        self.series
            .iter()
            .all(|s| s.values.iter().all(Option::is_none))
    }
}

/// Draws the whole chart.
pub fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &BarChart,
) -> Result<(), ChartError> {
    draw_progress(area, chart, chart.groups.len() as f64, None)
}

/// Draws the chart with groups `0..shown.floor()` at full height, group `shown.floor()` at
/// `shown.fract()` of its height and the rest empty; `subtitle` goes under the title (the
/// animation names the tier step there).
pub fn draw_progress<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &BarChart,
    shown: f64,
    subtitle: Option<&str>,
) -> Result<(), ChartError> {
    let body = super::framed(area, &chart.caption)?;
    let title = match subtitle {
        Some(s) => format!("{} — {s}", chart.title),
        None => chart.title.clone(),
    };
    let n = chart.groups.len().max(1);
    let top = if chart.max() > 0.0 {
        chart.max() * 1.18
    } else {
        1.0
    };
    let mut ctx = ChartBuilder::on(&body)
        .caption(title, ("sans-serif", 20).into_font().style(FontStyle::Bold))
        .margin(10)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)
        .map_err(ChartError::from)?;
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_desc(chart.x_name.as_str())
        .y_desc(chart.unit.as_str())
        .y_label_formatter(&|y| label(*y))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(ChartError::from)?;
    // group names under the centre of each group (plotters places float ticks itself);
    // many groups alternate between two rows so long names do not overlap
    let base = body.get_base_pixel();
    let plot_w = body.dim_in_pixel().0;
    let crowded = chart.groups.len() > 1
        && plot_w as usize / chart.groups.len()
            < chart.groups.iter().map(|g| g.len()).max().unwrap_or(0) * 8;
    for (i, g) in chart.groups.iter().enumerate() {
        let (x, y) = ctx.backend_coord(&(i as f64 + 0.5, 0.0));
        let row = if crowded && i % 2 == 1 { 16 } else { 0 };
        body.draw(&Text::new(
            g.clone(),
            (x - base.0, y - base.1 + 6 + row),
            ("sans-serif", if crowded { 12 } else { 14 })
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(ChartError::from)?;
    }
    let k = chart.series.len().max(1) as f64;
    let width = 0.8 / k;
    // a value above every bar while they have room for it
    let values_fit = (chart.series.len() * chart.groups.len()) as u32 * 44 <= plot_w;
    for (si, s) in chart.series.iter().enumerate() {
        let c = color(si);
        let mut bars = Vec::new();
        let mut texts = Vec::new();
        for (gi, v) in s.values.iter().enumerate() {
            let Some(v) = *v else { continue };
            let grown = if (gi as f64) < shown.floor() {
                1.0
            } else if gi as f64 == shown.floor() {
                shown.fract()
            } else {
                0.0
            };
            if grown <= 0.0 {
                continue;
            }
            let x0 = gi as f64 + 0.1 + si as f64 * width;
            let x1 = x0 + width * 0.92;
            bars.push(Rectangle::new([(x0, 0.0), (x1, v * grown)], c.filled()));
            let text = if grown >= 1.0 && values_fit {
                label(v)
            } else {
                String::new()
            };
            texts.push(Text::new(
                text,
                ((x0 + x1) / 2.0, v * grown),
                ("sans-serif", 12)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            ));
        }
        ctx.draw_series(bars)
            .map_err(ChartError::from)?
            .label(s.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], c.filled()));
        ctx.draw_series(texts).map_err(ChartError::from)?;
    }
    super::legend(&mut ctx, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}
