//! [`write_report`]: summaries in, a folder out: `report.html`, one PNG per chart, and for
//! a sweep `sweep.gif` (and `sweep.mp4` when `ffmpeg` is installed).
use crate::animation::Animation;
use crate::charts::catalog;
use crate::charts::render::SIZE;
use crate::figures::{unique_names, ChartData};
use crate::{html, ReportError};
use barrage_core::summary::Summary;
use std::path::{Path, PathBuf};

/// What [`write_report`] wrote.
#[derive(Debug, Clone, Default)]
pub struct ReportFiles {
    pub html: PathBuf,
    pub pngs: Vec<PathBuf>,
    pub gif: Option<PathBuf>,
    pub mp4: Option<PathBuf>,
    /// Frames of the GIF (and steps among them), for the caller to report.
    pub frames: usize,
}

/// Reads the summaries, names each run after its file (unique).
pub fn read_summaries(paths: &[PathBuf]) -> Result<Vec<(String, Summary)>, ReportError> {
    let stems: Vec<String> = paths
        .iter()
        .map(|p| {
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into())
        })
        .collect();
    let names = unique_names(&stems);
    paths
        .iter()
        .zip(names)
        .map(|(p, n)| Ok((n, Summary::read(p)?)))
        .collect()
}

/// Writes the report of `runs` into `dir` (created if missing).
pub fn write_report(runs: &[(String, Summary)], dir: &Path) -> Result<ReportFiles, ReportError> {
    if runs.is_empty() {
        return Err(ReportError::Input(
            "no summary given: name one or more *.summary.json files".into(),
        ));
    }
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(werr(dir))?;
    let data = ChartData::from_summaries(runs)?;
    let named = catalog::all(&data);
    let mut files = ReportFiles::default();
    let mut svgs = Vec::with_capacity(named.len());
    for c in &named {
        svgs.push(c.chart.svg(SIZE)?);
        let png = dir.join(format!("{}.png", c.file));
        c.chart.png(&png, SIZE)?;
        files.pngs.push(png);
    }
    let mut gif_bytes = None;
    if let Some(anim) = Animation::of(&data) {
        let frames = anim.render()?;
        let gif = dir.join("sweep.gif");
        anim.write_gif(&frames, &gif)?;
        gif_bytes = Some(std::fs::read(&gif).map_err(werr(&gif))?);
        files.frames = frames.len();
        files.gif = Some(gif);
        let mp4 = dir.join("sweep.mp4");
        if anim.write_mp4(&frames, &mp4)? {
            files.mp4 = Some(mp4);
        } else {
            tracing::info!("ffmpeg is not installed: no sweep.mp4 (apt-get install -y ffmpeg)");
        }
    }
    let page = html::render(runs, &data, &named, &svgs, gif_bytes.as_deref());
    let path = dir.join("report.html");
    std::fs::write(&path, page).map_err(werr(&path))?;
    files.html = path;
    Ok(files)
}
