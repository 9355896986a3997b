//! The metrics listener's own families: its open connections and their
//! limit, connections refused or closed before their request was answered,
//! and rejected credentials. Every reason's series exists from the start, at 0.
//!
//! This module only defines and records; `server`, `connections` and `auth`
//! decide what happened.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

use super::register;

/// Why a new connection was closed as soon as it was accepted; its
/// `as_str()` is the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The listener was full and no connection could make room (all busy
    /// answering, or waiting for a request for less than
    /// `connections::EVICT_AFTER`) for `connections::ROOM_WAIT`.
    Limit,
    /// The client is outside `[agent.web] allowed_networks`.
    Network,
}

impl Refused {
    /// Every reason, for pre-creating series.
    pub const ALL: [Refused; 2] = [Refused::Limit, Refused::Network];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Limit => "limit",
            Refused::Network => "network",
        }
    }
}

/// Why the agent closed an open connection; its `as_str()` is the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The listener was at its limit and a new connection took the place of
    /// this one, which had waited longest for a request (at least
    /// `connections::EVICT_AFTER`).
    Evicted,
    /// No complete request head within the header timeout (slow, or idle
    /// after its last request).
    HeaderTimeout,
    /// The request head was larger than the cap (answered 431).
    HeaderTooLarge,
    /// The TLS handshake failed or took longer than the header timeout.
    TlsHandshake,
}

impl Closed {
    /// Every reason, for pre-creating series.
    pub const ALL: [Closed; 4] = [
        Closed::Evicted,
        Closed::HeaderTimeout,
        Closed::HeaderTooLarge,
        Closed::TlsHandshake,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::Evicted => "evicted",
            Closed::HeaderTimeout => "header_timeout",
            Closed::HeaderTooLarge => "header_too_large",
            Closed::TlsHandshake => "tls_handshake",
        }
    }
}

/// Why a request was not let through basic authentication; its `as_str()`
/// is the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRejected {
    /// No (readable) basic credentials: answered 401 with a challenge.
    Missing,
    /// Unknown user or wrong password: answered 401.
    Invalid,
    /// The client failed too often lately: answered 429 without a check.
    Limited,
    /// Too many checks already waiting: answered 503 without a check.
    Busy,
}

impl AuthRejected {
    /// Every reason, for pre-creating series.
    pub const ALL: [AuthRejected; 4] = [
        AuthRejected::Missing,
        AuthRejected::Invalid,
        AuthRejected::Limited,
        AuthRejected::Busy,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthRejected::Missing => "missing",
            AuthRejected::Invalid => "invalid",
            AuthRejected::Limited => "limited",
            AuthRejected::Busy => "busy",
        }
    }
}

/// Families of the metrics listener.
#[derive(Clone)]
pub struct WebMetrics {
    /// Connections open now.
    pub connections_open: IntGauge,
    /// Connections the listener keeps open at most.
    pub connections_limit: IntGauge,
    refused: IntCounterVec,
    closed: IntCounterVec,
    auth_rejected: IntCounterVec,
}

impl WebMetrics {
    /// Registers the listener's families on `reg`.
    pub fn register(reg: &Registry) -> prometheus::Result<Self> {
        let m = WebMetrics {
            connections_open: register(
                reg,
                IntGauge::new(
                    "mailpulse_web_connections_open",
                    "Connections to the metrics listener open now.",
                )?,
            )?,
            connections_limit: register(
                reg,
                IntGauge::new(
                    "mailpulse_web_connections_limit",
                    "Connections the metrics listener keeps open at most: [agent.web] max_connections, or less when the descriptor limit is low.",
                )?,
            )?,
            refused: register(
                reg,
                IntCounterVec::new(
                    Opts::new(
                        "mailpulse_web_connections_refused_total",
                        "Connections to the metrics listener closed as soon as they were accepted, by reason.",
                    ),
                    &["reason"],
                )?,
            )?,
            closed: register(
                reg,
                IntCounterVec::new(
                    Opts::new(
                        "mailpulse_web_connections_closed_total",
                        "Connections to the metrics listener the agent closed before a request was answered, by reason.",
                    ),
                    &["reason"],
                )?,
            )?,
            auth_rejected: register(
                reg,
                IntCounterVec::new(
                    Opts::new(
                        "mailpulse_web_auth_rejected_total",
                        "Requests to the metrics listener refused by basic authentication, by reason.",
                    ),
                    &["reason"],
                )?,
            )?,
        };
        for r in Refused::ALL {
            m.refused.with_label_values(&[r.as_str()]);
        }
        for r in Closed::ALL {
            m.closed.with_label_values(&[r.as_str()]);
        }
        for r in AuthRejected::ALL {
            m.auth_rejected.with_label_values(&[r.as_str()]);
        }
        Ok(m)
    }

    /// Counts a connection refused at accept.
    pub fn refused(&self, reason: Refused) {
        self.refused.with_label_values(&[reason.as_str()]).inc();
    }

    /// Counts a connection the agent closed early.
    pub fn closed(&self, reason: Closed) {
        self.closed.with_label_values(&[reason.as_str()]).inc();
    }

    /// Counts a request refused by basic authentication.
    pub fn auth_rejected(&self, reason: AuthRejected) {
        self.auth_rejected
            .with_label_values(&[reason.as_str()])
            .inc();
    }
}
