//! Integration tests of `barrage-report` on summaries made by the real pipeline
//! (`synth`) and k6 files written in k6's layout (`k6file`): the data behind the charts,
//! the files of a report, compare and summarize.
mod charts;
mod compare;
mod k6file;
mod long_run;
mod summarize;
mod synth;
