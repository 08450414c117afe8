//! Raw-point outputs (`--out json=FILE`, `--out csv=FILE`), behind one trait.
//!
//! Workers ship raw points only when an output asks for them (`Assignment.raw_points`).
//! The coordinator hands each batch to [`Output::add`], which never blocks: batches go over
//! a channel to a thread that formats them into a temp file beside the target; `stop`
//! drains, flushes and renames the temp file over the target (readers never see half a
//! file). One module per format, each a [`Format`] writing to any `Write`, so tests
//! assert on bytes.
//!
//! Adding a format: a module with a `Format` impl, a variant of `cli::OutFormat`, a line in
//! [`open`].
pub mod csv;
pub mod ndjson;

use crate::cli::{OutFormat, OutSpec};
use crate::results::parent_dir;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// One raw sample (core's [`barrage_core::Point`]; the wire form converts in
/// `barrage_proto::point_from_pb`).
pub use barrage_core::Point as RawPoint;

/// A file format: a header (maybe) and points.
pub trait Format: Send {
    fn begin(&mut self, w: &mut dyn Write) -> io::Result<()>;
    fn write(&mut self, w: &mut dyn Write, points: &[RawPoint]) -> io::Result<()>;
}

/// An output: `start`, non-blocking `add`, `stop` (drain and commit).
pub trait Output: Send {
    fn start(&mut self) -> io::Result<()>;
    fn add(&mut self, points: Vec<RawPoint>);
    fn stop(self: Box<Self>) -> io::Result<()>;
}

/// A format writing, on its own thread, to a temp file renamed over `path` at `stop`.
pub struct FileOutput {
    path: PathBuf,
    format: Option<Box<dyn Format>>,
    tx: Option<mpsc::Sender<Vec<RawPoint>>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl FileOutput {
    pub fn new(path: PathBuf, format: Box<dyn Format>) -> Self {
        FileOutput {
            path,
            format: Some(format),
            tx: None,
            thread: None,
        }
    }
}

impl Output for FileOutput {
    fn start(&mut self) -> io::Result<()> {
        let mut format = self
            .format
            .take()
            .ok_or_else(|| io::Error::other("output started twice"))?;
        let tmp = tempfile::Builder::new()
            .prefix(".barrage-out-")
            // results are for reading by others: 0644 like any file, not tempfile's 0600
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(parent_dir(&self.path))?;
        let path = self.path.clone();
        let (tx, rx) = mpsc::channel::<Vec<RawPoint>>();
        self.tx = Some(tx);
        self.thread = Some(std::thread::spawn(move || {
            let mut w = BufWriter::with_capacity(1 << 16, tmp);
            format.begin(&mut w)?;
            for batch in rx {
                format.write(&mut w, &batch)?;
            }
            let tmp = w.into_inner().map_err(|e| e.into_error())?;
            tmp.as_file().sync_all()?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        }));
        Ok(())
    }

    fn add(&mut self, points: Vec<RawPoint>) {
        if let Some(tx) = &self.tx {
            // the writer thread only goes away on an I/O error, reported by `stop`
            let _ = tx.send(points);
        }
    }

    fn stop(mut self: Box<Self>) -> io::Result<()> {
        drop(self.tx.take());
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| io::Error::other("output thread panicked"))?
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display()))),
            None => Ok(()),
        }
    }
}

/// The output `--out` asked for; `thresholds(metric)` lists a metric's thresholds.
pub fn open(spec: &OutSpec, thresholds: &barrage_core::threshold::ThresholdSet) -> Box<dyn Output> {
    let format: Box<dyn Format> = match spec.format {
        OutFormat::Json => Box::new(ndjson::Ndjson::new(thresholds.clone())),
        OutFormat::Csv => Box::new(csv::Csv),
    };
    Box::new(FileOutput::new(spec.path.clone(), format))
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_core::MetricKind;
    #[test]
    fn file_output_commits_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.csv");
        let mut out: Box<dyn Output> = Box::new(FileOutput::new(path.clone(), Box::new(csv::Csv)));
        out.start().unwrap();
        out.add(vec![RawPoint {
            metric: "http_reqs".into(),
            kind: MetricKind::Counter,
            tags: vec![],
            time_unix_us: 1_000_000,
            value: 1.0,
        }]);
        assert!(!path.exists(), "visible before stop");
        out.stop().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
