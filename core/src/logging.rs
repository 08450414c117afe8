//! Logging and console output that can never end a run.
//!
//! A benchmark's results matter more than its messages: `barrage run … 2>&1 | head -1` closes
//! the pipe after one line, and from then on every write to stderr (and stdout) fails with
//! `EPIPE`. `println!`/`eprintln!` panic on such a failure, and tracing-subscriber reports its
//! own write failures with `eprint!`, so one closed pipe used to kill a run before it wrote its
//! summary. Here a failed write to the console is dropped: [`init`] installs the one tracing
//! set-up of all four binaries (its writer swallows errors, internal error reports are off),
//! and [`outln!`](crate::outln) / [`errln!`](crate::errln) replace `println!` / `eprintln!`.
//! SIGPIPE stays ignored (Rust's default), so a write returns `EPIPE` instead of killing the
//! process.
use std::io::{self, IsTerminal as _, Write};

/// A writer whose failures are swallowed: it reports every byte as written.
#[derive(Debug)]
pub struct Lossy<W>(pub W);

impl<W: Write> Write for Lossy<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = self.0.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

/// stderr, failures swallowed: tracing's writer.
pub fn stderr() -> Lossy<io::Stderr> {
    Lossy(io::stderr())
}

/// stdout, failures swallowed.
pub fn stdout() -> Lossy<io::Stdout> {
    Lossy(io::stdout())
}

/// Installs the tracing subscriber: `RUST_LOG` (default `info`), on stderr, colours only on
/// a terminal, and no write failure ever reported or fatal. Call once, first thing in `main`.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(stderr)
        .with_ansi(io::stderr().is_terminal())
        .log_internal_errors(false)
        .init();
}

/// Writes `args` and a newline to stdout in one write; a failure is ignored.
pub fn out_line(args: std::fmt::Arguments<'_>) {
    let _ = write_line(&mut io::stdout().lock(), args);
}

/// Writes `args` and a newline to stderr in one write; a failure is ignored.
pub fn err_line(args: std::fmt::Arguments<'_>) {
    let _ = write_line(&mut io::stderr().lock(), args);
}

fn write_line(w: &mut impl Write, args: std::fmt::Arguments<'_>) -> io::Result<()> {
    let mut line = std::fmt::format(args);
    line.push('\n');
    w.write_all(line.as_bytes())?;
    w.flush()
}

/// `println!` that cannot panic: a closed stdout is ignored.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::logging::out_line(format_args!($($arg)*)) };
}

/// `eprintln!` that cannot panic: a closed stderr is ignored.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::logging::err_line(format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader has gone: every write fails as a closed pipe does.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn a_closed_pipe_is_swallowed() {
        let mut w = Lossy(Closed);
        assert_eq!(w.write(b"abc").unwrap(), 3);
        w.write_all(b"line\n").unwrap();
        w.flush().unwrap();
        assert!(write_line(&mut Closed, format_args!("x")).is_err());
        let mut v = Vec::new();
        write_line(&mut v, format_args!("a {}", 1)).unwrap();
        assert_eq!(v, b"a 1\n");
    }
}
