//! Change-window metric families: which windows are open, and what became of
//! the incidents inside them.
//!
//! `mailpulse_window_active{window} 1` while a window is open; when it ends
//! (closed or expired) its series goes away (as the soak phase's does), so a
//! dashboard draws each window as the span its series exists.
//! `mailpulse_window_incidents_total{window,outcome}` counts incidents of
//! covered targets by outcome: `held` (paging held by the window) and
//! `beyond_tolerance` (paged at once). The pipeline tells this module what
//! the store holds and what the alerting decided; it records, nothing more.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::register;

/// What became of an incident inside a change window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowOutcome {
    /// Its page was held by the window.
    Held,
    /// It went beyond the window's tolerance and paged at once.
    BeyondTolerance,
}

impl WindowOutcome {
    /// Every outcome, for pre-creating series.
    pub const ALL: [WindowOutcome; 2] = [WindowOutcome::Held, WindowOutcome::BeyondTolerance];

    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowOutcome::Held => "held",
            WindowOutcome::BeyondTolerance => "beyond_tolerance",
        }
    }
}

/// The change-window families.
pub struct WindowMetrics {
    active: IntGaugeVec,
    incidents: IntCounterVec,
}

impl WindowMetrics {
    /// Registers the families on `reg` (empty until a window opens).
    pub fn register(reg: &Registry) -> prometheus::Result<WindowMetrics> {
        Ok(WindowMetrics {
            active: register(
                reg,
                IntGaugeVec::new(
                    Opts::new(
                        "mailpulse_window_active",
                        "Change windows open now; 1 while open, absent otherwise.",
                    ),
                    &["window"],
                )?,
            )?,
            incidents: register(
                reg,
                IntCounterVec::new(
                    Opts::new(
                        "mailpulse_window_incidents_total",
                        "Incidents of targets a change window covers, by outcome: held (the page held by the window) or beyond_tolerance (paged at once, beyond the window's tolerance).",
                    ),
                    &["window", "outcome"],
                )?,
            )?,
        })
    }

    /// Shows exactly the windows named in `open` as open.
    pub fn set_open<'a>(&self, open: impl IntoIterator<Item = &'a str>) {
        self.active.reset();
        for name in open {
            self.active.with_label_values(&[name]).set(1);
            for outcome in WindowOutcome::ALL {
                self.incidents.with_label_values(&[name, outcome.as_str()]);
            }
        }
    }

    /// Counts one incident of window `window` with `outcome`.
    pub fn count(&self, window: &str, outcome: WindowOutcome) {
        self.incidents
            .with_label_values(&[window, outcome.as_str()])
            .inc();
    }

    /// The count of `window`'s incidents with `outcome` (tests).
    pub fn incidents(&self, window: &str, outcome: WindowOutcome) -> u64 {
        self.incidents
            .with_label_values(&[window, outcome.as_str()])
            .get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(reg: &Registry) -> String {
        let mut out = Vec::new();
        super::super::text::encode(&reg.gather(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn open_windows_are_shown_and_ended_ones_go_away() {
        let reg = Registry::new();
        let m = WindowMetrics::register(&reg).unwrap();
        assert!(!page(&reg).contains("mailpulse_window_active{"));
        m.set_open(["batch 1", "batch 2"]);
        let text = page(&reg);
        assert!(
            text.contains("mailpulse_window_active{window=\"batch 1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("mailpulse_window_active{window=\"batch 2\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "mailpulse_window_incidents_total{outcome=\"beyond_tolerance\",window=\"batch 1\"} 0"
        ), "{text}");
        m.count("batch 1", WindowOutcome::Held);
        m.count("batch 1", WindowOutcome::Held);
        m.set_open(["batch 2"]);
        let text = page(&reg);
        assert!(
            !text.contains("mailpulse_window_active{window=\"batch 1\"}"),
            "{text}"
        );
        assert!(
            text.contains(
                "mailpulse_window_incidents_total{outcome=\"held\",window=\"batch 1\"} 2"
            ),
            "counters stay: {text}"
        );
    }
}
