//! Integration tests of `barrage-report` on summaries made by the real pipeline
//! (`synth`): the data behind the charts, the files of a report, compare and summarize.
mod charts;
mod synth;
