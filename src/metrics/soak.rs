//! Soak-test metric families: the run and phase in progress, so dashboards
//! and rules can cut every other series by phase.
//!
//! Only while a run is active: `mailpulse_soak_phase_info{run,phase} 1` and
//! `mailpulse_soak_phase_started_timestamp_seconds{run,phase}` (a run
//! started without a phase has `phase=""`). The pipeline tells this module
//! what the store holds; it records, nothing more.

use prometheus::{GaugeVec, IntGaugeVec, Opts, Registry};

use super::register;

/// The run and phase in progress, as the pipeline hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivePhase {
    /// The run's name.
    pub run: String,
    /// The current phase's name; empty before the first phase.
    pub phase: String,
    /// When the phase (or the run, without a phase) began, Unix seconds.
    pub started_at: f64,
}

/// The soak families.
pub struct SoakMetrics {
    info: IntGaugeVec,
    started: GaugeVec,
}

impl SoakMetrics {
    /// Registers the families on `reg` (empty until a run is active).
    pub fn register(reg: &Registry) -> prometheus::Result<SoakMetrics> {
        let labels = &["run", "phase"];
        Ok(SoakMetrics {
            info: register(
                reg,
                IntGaugeVec::new(
                    Opts::new(
                        "mailpulse_soak_phase_info",
                        "The soak-test run and phase in progress; 1 while active, absent otherwise.",
                    ),
                    labels,
                )?,
            )?,
            started: register(
                reg,
                GaugeVec::new(
                    Opts::new(
                        "mailpulse_soak_phase_started_timestamp_seconds",
                        "When the soak-test phase in progress began, Unix seconds.",
                    ),
                    labels,
                )?,
            )?,
        })
    }

    /// Shows `active` (and nothing else), or nothing when no run is active.
    pub fn set(&self, active: Option<&ActivePhase>) {
        self.info.reset();
        self.started.reset();
        if let Some(a) = active {
            let labels = [a.run.as_str(), a.phase.as_str()];
            self.info.with_label_values(&labels).set(1);
            self.started.with_label_values(&labels).set(a.started_at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_phase_in_progress_is_shown() {
        let reg = Registry::new();
        let m = SoakMetrics::register(&reg).unwrap();
        let page = |reg: &Registry| {
            let mut out = Vec::new();
            super::super::text::encode(&reg.gather(), &mut out);
            String::from_utf8(out).unwrap()
        };
        assert!(!page(&reg).contains("mailpulse_soak_phase_info{"));
        let phase = |name: &str, at: f64| ActivePhase {
            run: "golive".into(),
            phase: name.into(),
            started_at: at,
        };
        m.set(Some(&phase("baseline", 1.0e9)));
        m.set(Some(&phase("plateau", 1.5e9)));
        let text = page(&reg);
        assert!(
            text.contains("mailpulse_soak_phase_info{phase=\"plateau\",run=\"golive\"} 1"),
            "{text}"
        );
        assert!(!text.contains("baseline"), "{text}");
        assert!(text.contains(
            "mailpulse_soak_phase_started_timestamp_seconds{phase=\"plateau\",run=\"golive\"} 1500000000"
        ), "{text}");
        m.set(None);
        assert!(!page(&reg).contains("golive"));
    }
}
