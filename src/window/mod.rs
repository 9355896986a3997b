//! What a change window leaves behind: the probe figures gathered while it
//! was open (`figures.rs`: per covered target a quantile sketch of the
//! latencies inside the window and the p95 of the hour before it), the
//! window summary built from the window, its incidents and those figures
//! (`summary.rs`), and its renderings as text, JSON and one self-contained
//! HTML page (`render.rs`). Pure: the pipeline gathers the figures, the
//! delivery loop's housekeeping queues the summary, `mailpulse window report`
//! prints it; this module only computes and writes strings.

pub mod figures;
pub mod render;
pub mod summary;

pub use figures::{p95, TargetFigures, WindowFigures};
pub use summary::{build, IncidentLine, StillOpen, TargetSummary, WindowSummary};
