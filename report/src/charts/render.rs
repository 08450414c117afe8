//! One chart of any kind ([`Chart`]) and its three renderings: an SVG string (inline in the
//! HTML), a PNG file, and raw RGB pixels (frames of the animation).
use super::{bars, lines, spectrum, BarChart, ChartError, LineChart, SpectrumChart};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Size of a rendered chart, pixels.
pub const SIZE: (u32, u32) = (960, 480);

/// A chart of any kind, with its data.
#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    Bars(BarChart),
    Lines(LineChart),
    Spectrum(SpectrumChart),
}

impl Chart {
    pub fn title(&self) -> &str {
        match self {
            Chart::Bars(c) => &c.title,
            Chart::Lines(c) => &c.title,
            Chart::Spectrum(c) => &c.title,
        }
    }

    pub fn caption(&self) -> &str {
        match self {
            Chart::Bars(c) => &c.caption,
            Chart::Lines(c) => &c.caption,
            Chart::Spectrum(c) => &c.caption,
        }
    }

    /// Draws onto any backend.
    pub fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), ChartError> {
        match self {
            Chart::Bars(c) => bars::draw(area, c),
            Chart::Lines(c) => lines::draw(area, c),
            Chart::Spectrum(c) => spectrum::draw(area, c),
        }
    }

    /// The chart as an SVG document.
    pub fn svg(&self, size: (u32, u32)) -> Result<String, ChartError> {
        let mut out = String::new();
        {
            let area = SVGBackend::with_string(&mut out, size).into_drawing_area();
            self.draw(&area)?;
            area.present().map_err(ChartError::from)?;
        }
        Ok(out)
    }

    /// The chart as a PNG file.
    pub fn png(&self, path: &Path, size: (u32, u32)) -> Result<(), ChartError> {
        let area = BitMapBackend::new(path, size).into_drawing_area();
        self.draw(&area)?;
        area.present().map_err(ChartError::from)
    }
}

/// Draws into a fresh RGB buffer (`w × h × 3` bytes, row-major).
pub fn rgb<F>(size: (u32, u32), draw: F) -> Result<Vec<u8>, ChartError>
where
    F: FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), ChartError>,
{
    let mut buf = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let area = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        draw(&area)?;
        area.present().map_err(ChartError::from)?;
    }
    Ok(buf)
}
