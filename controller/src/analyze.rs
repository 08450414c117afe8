//! `barrage report`, `compare` and `summarize`: thin edges over `barrage-report`, which
//! does the work. Exit codes: 0 done (compare: no regression), 1 compare found a
//! regression or a report could not be written, 2 an input could not be used.
use crate::cli::{CompareArgs, CompareFormat, ReportArgs, SummarizeArgs};
use crate::exit_code;
use barrage_core::{errln, outln};
use barrage_report::compare::{compare, Budgets};
use barrage_report::input::{Measured, ResultsFile};
use barrage_report::summarize::summarize;
use barrage_report::write::read_summaries;
use barrage_report::{write_report, ReportError};
use std::process::ExitCode;

fn fail(e: &ReportError) -> ExitCode {
    errln!("barrage: {e}");
    match e {
        ReportError::Write { .. } | ReportError::Chart(_) => ExitCode::from(exit_code::FAILURE),
        ReportError::Summary(_) | ReportError::Input(_) => ExitCode::from(exit_code::CONFIG),
    }
}

pub fn report_cmd(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let runs = match read_summaries(&a.files) {
        Ok(r) => r,
        Err(e) => return Ok(fail(&e)),
    };
    let files = match write_report(&runs, &a.out) {
        Ok(f) => f,
        Err(e) => return Ok(fail(&e)),
    };
    outln!("report: {}", files.html.display());
    outln!("charts: {} PNG in {}", files.pngs.len(), a.out.display());
    if let Some(gif) = &files.gif {
        outln!("animation: {} ({} frames)", gif.display(), files.frames);
    }
    match &files.mp4 {
        Some(mp4) => outln!("video: {}", mp4.display()),
        None if files.gif.is_some() => {
            outln!("video: none (ffmpeg is not installed: apt-get install -y ffmpeg)")
        }
        None => {}
    }
    Ok(ExitCode::SUCCESS)
}

pub fn compare_cmd(a: CompareArgs) -> anyhow::Result<ExitCode> {
    let (base, cur) = if a.pair.is_empty() {
        (a.baseline, a.current)
    } else if a.pair.len() == 2 {
        (vec![a.pair[0].clone()], vec![a.pair[1].clone()])
    } else {
        errln!(
            "barrage compare: give BASELINE CURRENT (two files) or --baseline FILE... --current FILE..."
        );
        return Ok(ExitCode::from(exit_code::CONFIG));
    };
    if base.is_empty() || cur.is_empty() {
        errln!(
            "barrage compare: give BASELINE CURRENT (two files) or --baseline FILE... --current FILE..."
        );
        return Ok(ExitCode::from(exit_code::CONFIG));
    }
    let mut budgets = Budgets::default();
    for b in &a.budgets {
        if let Err(e) = budgets.set(b) {
            errln!("barrage compare: {e}");
            return Ok(ExitCode::from(exit_code::CONFIG));
        }
    }
    let (mb, mc) = match (Measured::read_all(&base), Measured::read_all(&cur)) {
        (Ok(b), Ok(c)) => (b, c),
        (Err(e), _) | (_, Err(e)) => return Ok(fail(&e)),
    };
    let c = compare(&mb, &mc, &budgets, a.seed);
    match a.format {
        CompareFormat::Markdown => outln!("{}", c.markdown()),
        CompareFormat::Json => outln!("{}", c.json()),
    }
    Ok(if c.regressions > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn summarize_cmd(a: SummarizeArgs) -> anyhow::Result<ExitCode> {
    let f = match ResultsFile::read(&a.file) {
        Ok(f) => f,
        Err(e) => return Ok(fail(&e)),
    };
    let s = summarize(&f);
    if a.json {
        outln!("{}", s.json());
    } else {
        outln!("{}", s.text().trim_end());
    }
    Ok(ExitCode::SUCCESS)
}
