//! The sweep's animated comparison, the way the seed describes it: runtime against runtime,
//! bars growing tier by tier, four panels (throughput, request latency p95 and p99, error
//! rate), each with its title and unit on every frame and the tier step named in it.
//!
//! Frame count rule: [`GROWTH_FRAMES`] frames per tier step, in which that tier's bars grow
//! from 1/[`GROWTH_FRAMES`] of their height to full; the last frame of each step (bars at
//! full height) is held [`STEP_DELAY_CS`] (the final one [`LAST_DELAY_CS`]). So a sweep of
//! `T` tiers has `T × GROWTH_FRAMES` frames, of which exactly `T` are held step frames.
//!
//! The frames are drawn once, as RGB pixels, and encoded twice: GIF with the `gif` crate,
//! MP4 by piping them to `ffmpeg` (when installed), each frame repeated for its delay.
use crate::charts::bars::{self, BarChart};
use crate::charts::catalog::{self, Pct};
use crate::charts::render::rgb;
use crate::charts::ChartError;
use crate::figures::ChartData;
use crate::ReportError;
use plotters::prelude::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Frames per tier step.
pub const GROWTH_FRAMES: usize = 6;
/// Delay of a growth frame, centiseconds.
pub const GROWTH_DELAY_CS: u16 = 8;
/// Delay of a step's full frame, centiseconds.
pub const STEP_DELAY_CS: u16 = 120;
/// Delay of the very last frame, centiseconds.
pub const LAST_DELAY_CS: u16 = 300;
/// Frame size, pixels (even, as H.264 wants).
pub const FRAME_SIZE: (u32, u32) = (1280, 720);
/// MP4 frame rate.
const FPS: u32 = 25;

/// One frame: how far the bars have grown and for how long it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSpec {
    /// Groups (tiers) shown: `k + f` = tiers `0..k` full, tier `k` at `f` of its height.
    pub shown: f64,
    /// Under every panel's title, e.g. `tier m (2 of 4)`.
    pub subtitle: String,
    pub delay_cs: u16,
}

/// The animation of a sweep: four bar charts and the frame plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Animation {
    pub panels: Vec<BarChart>,
    pub frames: Vec<FrameSpec>,
}

impl Animation {
    /// The animation of a sweep; `None` when `d` is not one ([`ChartData::is_sweep`]).
    pub fn of(d: &ChartData) -> Option<Animation> {
        if !d.is_sweep() {
            return None;
        }
        let panels = vec![
            catalog::throughput(d),
            catalog::latency(d, Pct::P95),
            catalog::latency(d, Pct::P99),
            catalog::error_rate(d),
        ];
        let tiers = d.tiers();
        let mut frames = Vec::new();
        for (k, tier) in tiers.iter().enumerate() {
            for j in 1..=GROWTH_FRAMES {
                let full = j == GROWTH_FRAMES;
                let last = full && k + 1 == tiers.len();
                frames.push(FrameSpec {
                    // a full step shows `k + 1` groups; growth frames part of group `k`
                    shown: if full {
                        (k + 1) as f64
                    } else {
                        k as f64 + j as f64 / GROWTH_FRAMES as f64
                    },
                    subtitle: format!("tier {tier} ({} of {})", k + 1, tiers.len()),
                    delay_cs: if last {
                        LAST_DELAY_CS
                    } else if full {
                        STEP_DELAY_CS
                    } else {
                        GROWTH_DELAY_CS
                    },
                });
            }
        }
        Some(Animation { panels, frames })
    }

    /// Frame `i` as RGB pixels of [`FRAME_SIZE`].
    pub fn frame_rgb(&self, i: usize) -> Result<Vec<u8>, ChartError> {
        let f = &self.frames[i];
        rgb(FRAME_SIZE, |area| {
            area.fill(&WHITE).map_err(ChartError::from)?;
            let cells = area.split_evenly((2, 2));
            for (cell, panel) in cells.iter().zip(&self.panels) {
                bars::draw_progress(cell, panel, f.shown, Some(&f.subtitle))?;
            }
            Ok(())
        })
    }

    /// Every frame, drawn.
    pub fn render(&self) -> Result<Vec<Vec<u8>>, ChartError> {
        (0..self.frames.len()).map(|i| self.frame_rgb(i)).collect()
    }

    /// Writes the animated GIF (looping).
    pub fn write_gif(&self, frames: &[Vec<u8>], path: &Path) -> Result<(), ReportError> {
        let werr = |e: std::io::Error| ReportError::Write {
            path: path.to_path_buf(),
            source: e,
        };
        let gerr = |e: gif::EncodingError| ReportError::Write {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        };
        let file = std::fs::File::create(path).map_err(werr)?;
        let (w, h) = (FRAME_SIZE.0 as u16, FRAME_SIZE.1 as u16);
        let mut enc = gif::Encoder::new(std::io::BufWriter::new(file), w, h, &[]).map_err(gerr)?;
        enc.set_repeat(gif::Repeat::Infinite).map_err(gerr)?;
        for (spec, px) in self.frames.iter().zip(frames) {
            let mut frame = gif::Frame::from_rgb_speed(w, h, px, 10);
            frame.delay = spec.delay_cs;
            enc.write_frame(&frame).map_err(gerr)?;
        }
        Ok(())
    }

    /// Writes the MP4 with `ffmpeg` (H.264, 25 fps, each frame repeated for its delay).
    /// `Ok(false)` when `ffmpeg` is not installed.
    pub fn write_mp4(&self, frames: &[Vec<u8>], path: &Path) -> Result<bool, ReportError> {
        if !ffmpeg_available() {
            return Ok(false);
        }
        let werr = |e: std::io::Error| ReportError::Write {
            path: path.to_path_buf(),
            source: e,
        };
        let size = format!("{}x{}", FRAME_SIZE.0, FRAME_SIZE.1);
        let mut child = Command::new("ffmpeg")
            .args([
                "-y",
                "-loglevel",
                "error",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
            ])
            .args(["-s", &size, "-r", &FPS.to_string(), "-i", "-"])
            .args([
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-movflags",
                "+faststart",
            ])
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(werr)?;
        {
            let mut stdin = child.stdin.take().expect("stdin is piped");
            for (spec, px) in self.frames.iter().zip(frames) {
                let repeat = (u32::from(spec.delay_cs) * FPS).div_ceil(100).max(1);
                for _ in 0..repeat {
                    stdin.write_all(px).map_err(werr)?;
                }
            }
        }
        let out = child.wait_with_output().map_err(werr)?;
        if !out.status.success() {
            return Err(ReportError::Input(format!(
                "{}: ffmpeg failed ({}): {}",
                path.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(true)
    }
}

/// True when `ffmpeg` runs.
pub fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
