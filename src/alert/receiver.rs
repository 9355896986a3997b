//! The receiver interface: one [`Receiver`] per destination kind (one per
//! file beside this one), its [`DeliveryError`] (the receiver classifies a
//! failure as retriable or permanent; the delivery loop acts on it), and
//! [`BoxFuture`], so receivers can sit behind `dyn Receiver`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::AlertEvent;
#[cfg(doc)]
use super::{redact, HOUSEKEEPING_INTERVAL};

/// Why a delivery attempt failed, as the receiver judges it.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryError {
    /// Worth another try later: network errors, timeouts, HTTP 5xx and 429,
    /// SMTP 4xx.
    Retriable {
        /// What happened.
        message: String,
        /// How long the receiver asked us to wait (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// The receiver refused the message for good (HTTP 4xx, SMTP 5xx, a
    /// payload it cannot take); sending it again would fail again.
    Permanent {
        /// What happened.
        message: String,
    },
}

impl DeliveryError {
    /// A retriable error without a requested delay.
    pub fn retriable(message: impl Into<String>) -> DeliveryError {
        DeliveryError::Retriable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A permanent error.
    pub fn permanent(message: impl Into<String>) -> DeliveryError {
        DeliveryError::Permanent {
            message: message.into(),
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, DeliveryError::Retriable { .. })
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryError::Retriable { message, .. } | DeliveryError::Permanent { message } => {
                f.write_str(message)
            }
        }
    }
}

impl std::error::Error for DeliveryError {}

/// A boxed future, so receivers can sit behind `dyn Receiver`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One destination of notifications. One implementation per file, all with
/// this signature; the delivery loop owns retries, order and deadlines.
pub trait Receiver: Send + Sync {
    /// The configured name; the `receiver` label.
    fn name(&self) -> &str;

    /// The configured kind (`webhook`, `pagerduty`, ...).
    fn kind(&self) -> &'static str;

    /// Sends one notification, once. The receiver classifies failures.
    fn send<'a>(&'a self, event: &'a AlertEvent) -> BoxFuture<'a, Result<(), DeliveryError>>;

    /// Whether the far side keeps an open alert that it re-notifies about by
    /// itself and that a resolve closes (PagerDuty, Opsgenie, Alertmanager,
    /// Grafana). Such receivers get no `repeat_interval` reminders, and
    /// `test-alert` resolves its test right after firing it.
    fn stateful(&self) -> bool {
        false
    }

    /// Periodic upkeep, called about every [`HOUSEKEEPING_INTERVAL`] (the
    /// Alertmanager receiver re-posts its open alerts here). Best effort.
    fn refresh(&self, _now: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// `text` without this receiver's secrets, for what the delivery loop
    /// says about it besides its errors (a panic's message). Receivers built
    /// from the configuration are wrapped in [`redact::Redacted`], which
    /// redacts; the default returns `text` as it is.
    fn redact(&self, text: &str) -> String {
        text.to_string()
    }
}
