//! Line charts over time: one run's VUs, req/s, p95 or errors per time-series row (and the
//! target's CPU and memory when measured). A gap (`None`) breaks the line: an interval
//! without a sample of that kind is not drawn as zero.
use super::{color, label, ChartError};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::series::LineSeries as Polyline;

/// One line chart's data.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// With the unit, e.g. `p95 latency over time (ms)`.
    pub title: String,
    pub x_unit: String,
    pub y_unit: String,
    pub caption: String,
    pub series: Vec<LineSeries>,
}

/// One line: `(x, y)` points; `y = None` is a gap.
#[derive(Debug, Clone, PartialEq)]
pub struct LineSeries {
    pub name: String,
    pub points: Vec<(f64, Option<f64>)>,
}

impl LineChart {
    fn x_range(&self) -> (f64, f64) {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0));
        let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
        if lo.is_finite() && hi > lo {
            (lo, hi)
        } else if lo.is_finite() {
            (lo, lo + 1.0)
        } else {
            (0.0, 1.0)
        }
    }

    fn y_max(&self) -> f64 {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| p.1))
            .fold(0.0f64, f64::max)
    }
}

/// The contiguous runs of defined points of a series.
fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for &(x, y) in points {
        match y {
            Some(y) if y.is_finite() => out.last_mut().expect("never empty").push((x, y)),
            _ => {
                if !out.last().expect("never empty").is_empty() {
                    out.push(Vec::new());
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Draws the chart.
pub fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &LineChart,
) -> Result<(), ChartError> {
    let body = super::framed(area, &chart.caption)?;
    let (x0, x1) = chart.x_range();
    let top = match chart.y_max() {
        m if m > 0.0 => m * 1.1,
        _ => 1.0,
    };
    let mut ctx = ChartBuilder::on(&body)
        .caption(
            chart.title.as_str(),
            ("sans-serif", 20).into_font().style(FontStyle::Bold),
        )
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, 0f64..top)
        .map_err(ChartError::from)?;
    ctx.configure_mesh()
        .x_desc(chart.x_unit.as_str())
        .y_desc(chart.y_unit.as_str())
        .y_label_formatter(&|y| label(*y))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(ChartError::from)?;
    for (i, s) in chart.series.iter().enumerate() {
        let c = color(i);
        let style = c.stroke_width(2);
        let mut first = true;
        for seg in segments(&s.points) {
            let drawn = ctx
                .draw_series(Polyline::new(seg.clone(), style))
                .map_err(ChartError::from)?;
            if first {
                drawn.label(s.name.clone()).legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 14, y)], c.stroke_width(2))
                });
                first = false;
            }
            if seg.len() == 1 {
                ctx.draw_series(seg.iter().map(|p| Circle::new(*p, 3, c.filled())))
                    .map_err(ChartError::from)?;
            }
        }
    }
    if chart.series.len() > 1 || chart.series.iter().any(|s| !s.name.is_empty()) {
        super::legend(&mut ctx, SeriesLabelPosition::UpperRight)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_split_lines() {
        let pts = [
            (0.0, Some(1.0)),
            (1.0, Some(2.0)),
            (2.0, None),
            (3.0, Some(f64::NAN)),
            (4.0, Some(5.0)),
        ];
        assert_eq!(
            segments(&pts),
            vec![vec![(0.0, 1.0), (1.0, 2.0)], vec![(4.0, 5.0)]]
        );
        assert!(segments(&[(0.0, None)]).is_empty());
    }
}
