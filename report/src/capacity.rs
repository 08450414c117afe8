//! The capacity chart of `barrage characterize`: throughput against load above, the latency
//! percentiles against load below, with the capacity under SLO and the knee marked on both.
//! Built from plain numbers ([`CapacityCurve`]) so the controller hands over its curve and
//! tests check the chart's data instead of pixels.
use crate::charts::render::SIZE;
use crate::charts::{lines, ChartError, LineChart, LineSeries};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// One plateau of the curve.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    /// Planned load (VUs, or iterations/s).
    pub load: f64,
    /// Iterations per second achieved.
    pub throughput: f64,
    /// Latency percentiles, ms.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The curve and its marks.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityCurve {
    /// The load's unit, e.g. `vus`, `iterations/s`.
    pub unit: String,
    /// The latency metric, e.g. `agent_flow_duration`.
    pub latency_metric: String,
    /// Hardware, target: drawn along the bottom.
    pub caption: String,
    /// Sorted by load.
    pub points: Vec<CurvePoint>,
    pub capacity_under_slo: Option<f64>,
    pub knee: Option<f64>,
}

/// A vertical mark from 0 to `top` at `x`.
fn mark(name: &str, x: Option<f64>, top: f64) -> Option<LineSeries> {
    x.map(|x| LineSeries {
        name: format!("{name} ({})", crate::charts::label(x)),
        points: vec![(x, Some(0.0)), (x, Some(top))],
    })
}

impl CapacityCurve {
    /// The two panels' data: throughput, then latency.
    pub fn panels(&self) -> (LineChart, LineChart) {
        let x_unit = format!("load ({})", self.unit);
        let thr: Vec<(f64, Option<f64>)> = self
            .points
            .iter()
            .map(|p| (p.load, Some(p.throughput)))
            .collect();
        let thr_top = self.points.iter().map(|p| p.throughput).fold(0.0, f64::max);
        let mut thr_series = vec![LineSeries {
            name: "throughput".into(),
            points: thr,
        }];
        let pick = |f: fn(&CurvePoint) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
            self.points.iter().map(|p| (p.load, f(p))).collect()
        };
        let mut lat_series = vec![
            LineSeries {
                name: "p50".into(),
                points: pick(|p| p.p50_ms),
            },
            LineSeries {
                name: "p95".into(),
                points: pick(|p| p.p95_ms),
            },
            LineSeries {
                name: "p99".into(),
                points: pick(|p| p.p99_ms),
            },
        ];
        let lat_top = self
            .points
            .iter()
            .filter_map(|p| p.p99_ms.or(p.p95_ms))
            .fold(0.0, f64::max);
        for (name, x) in [
            ("capacity under SLO", self.capacity_under_slo),
            ("knee", self.knee),
        ] {
            thr_series.extend(mark(name, x, thr_top));
            lat_series.extend(mark(name, x, lat_top));
        }
        (
            LineChart {
                title: format!("throughput by load ({})", self.unit),
                x_unit: x_unit.clone(),
                y_unit: "iterations/s".into(),
                caption: self.caption.clone(),
                series: thr_series,
            },
            LineChart {
                title: format!("{} by load (ms)", self.latency_metric),
                x_unit,
                y_unit: "ms".into(),
                caption: self.caption.clone(),
                series: lat_series,
            },
        )
    }

    /// Draws both panels, one above the other.
    pub fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), ChartError> {
        let (top, bottom) = self.panels();
        let (_, h) = area.dim_in_pixel();
        let (a, b) = area.split_vertically(h / 2);
        lines::draw(&a, &top)?;
        lines::draw(&b, &bottom)
    }

    /// Pixel size: the report's chart width, twice its height (two panels).
    pub fn size() -> (u32, u32) {
        (SIZE.0, SIZE.1 * 2)
    }

    /// The chart as an SVG document.
    pub fn svg(&self) -> Result<String, ChartError> {
        let mut out = String::new();
        {
            let area = SVGBackend::with_string(&mut out, Self::size()).into_drawing_area();
            self.draw(&area)?;
            area.present().map_err(ChartError::from)?;
        }
        Ok(out)
    }

    /// The chart as a PNG file.
    pub fn png(&self, path: &Path) -> Result<(), ChartError> {
        let area = BitMapBackend::new(path, Self::size()).into_drawing_area();
        self.draw(&area)?;
        area.present().map_err(ChartError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve() -> CapacityCurve {
        let pt = |load: f64, thr: f64, p95: f64| CurvePoint {
            load,
            throughput: thr,
            p50_ms: Some(p95 * 0.8),
            p95_ms: Some(p95),
            p99_ms: Some(p95 * 1.2),
        };
        CapacityCurve {
            unit: "iterations/s".into(),
            latency_metric: "agent_flow_duration".into(),
            caption: "test".into(),
            points: vec![
                pt(2.0, 2.0, 400.0),
                pt(4.0, 4.0, 410.0),
                pt(8.0, 7.5, 900.0),
            ],
            capacity_under_slo: Some(4.0),
            knee: Some(8.0),
        }
    }

    #[test]
    fn panels_carry_the_curve_and_the_marks() {
        let (thr, lat) = curve().panels();
        assert_eq!(thr.series[0].points[2], (8.0, Some(7.5)));
        assert_eq!(lat.series[1].name, "p95");
        assert_eq!(lat.series[1].points[1], (4.0, Some(410.0)));
        let cap = thr
            .series
            .iter()
            .find(|s| s.name.starts_with("capacity"))
            .unwrap();
        assert_eq!(cap.points, vec![(4.0, Some(0.0)), (4.0, Some(7.5))]);
        assert!(lat.series.iter().any(|s| s.name == "knee (8.00)"));
        assert!(lat.title.contains("agent_flow_duration"));
    }

    #[test]
    fn renders_svg_and_png() {
        let c = curve();
        let svg = c.svg().unwrap();
        assert!(svg.contains("<svg") && svg.contains("throughput by load"));
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("c.png");
        c.png(&png).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
