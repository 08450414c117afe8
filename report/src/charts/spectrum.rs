//! The latency distribution as HdrHistogram plots it: value against percentile, with the
//! percentile axis stretched logarithmically towards 100 % (x = 1 / (1 − p)), so the tail
//! (99 %, 99.9 %, …) gets as much room as the median. The points come from the stored
//! histograms ([`crate::figures`]), never from a few rounded percentiles.
use super::{color, label, ChartError};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One spectrum chart's data.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectrumChart {
    /// With the unit, e.g. `http_req_duration percentile spectrum (ms)`.
    pub title: String,
    pub unit: String,
    pub caption: String,
    pub series: Vec<SpectrumSeries>,
}

/// One distribution: `(percentile in 0..=100, value)` points, percentiles increasing.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectrumSeries {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Highest percentile drawn: 99.999 % (x = 10⁵); the maximum is drawn at it.
const X_MAX: f64 = 1e5;

/// The x coordinate of percentile `p` (0..=100).
pub fn x_of(p: f64) -> f64 {
    let q = (p / 100.0).clamp(0.0, 1.0);
    if q >= 1.0 - 1.0 / X_MAX {
        X_MAX
    } else {
        1.0 / (1.0 - q)
    }
}

/// `x = 10^k` as a percentile label: 1 → `0%`, 10 → `90%`, 100 → `99%`, 1000 → `99.9%`.
pub fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let digits = (x.log10().round() as i32 - 2).max(0) as usize;
    format!("{p:.digits$}%")
}

/// Draws the chart.
pub fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &SpectrumChart,
) -> Result<(), ChartError> {
    let body = super::framed(area, &chart.caption)?;
    let top = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let ticks: Vec<f64> = (0..=5).map(|k| 10f64.powi(k)).collect();
    let mut ctx = ChartBuilder::on(&body)
        .caption(
            chart.title.as_str(),
            ("sans-serif", 20).into_font().style(FontStyle::Bold),
        )
        .margin(10)
        .margin_right(36)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((1f64..X_MAX).log_scale().with_key_points(ticks), 0f64..top)
        .map_err(ChartError::from)?;
    ctx.configure_mesh()
        .x_desc("percentile")
        .y_desc(chart.unit.as_str())
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| label(*y))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(ChartError::from)?;
    for (i, s) in chart.series.iter().enumerate() {
        let c = color(i);
        let pts: Vec<(f64, f64)> = s.points.iter().map(|&(p, v)| (x_of(p), v)).collect();
        ctx.draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(ChartError::from)?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], c.stroke_width(2)));
    }
    super::legend(&mut ctx, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis() {
        let cases = [
            (1.0, "0%"),
            (10.0, "90%"),
            (100.0, "99%"),
            (1000.0, "99.9%"),
            (10000.0, "99.99%"),
        ];
        for (x, want) in cases {
            assert_eq!(percentile_label(x), want, "x={x}");
        }
        assert_eq!(x_of(0.0), 1.0);
        assert!((x_of(99.0) - 100.0).abs() < 1e-9);
        assert_eq!(x_of(100.0), X_MAX);
    }
}
