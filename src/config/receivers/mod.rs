//! The receiver kinds: one file per kind (its typed settings, the keys it
//! accepts, its validation and the secrets it sends) and the registry below,
//! one line per kind, from which [`ReceiverKind`] and [`ReceiverSpec`] are
//! made.
//!
//! To add a receiver kind `foo`:
//! 1. `config/receivers/foo.rs`: `pub struct FooSpec` (with
//!    [`SpecSecrets`]), `pub(super) const KEYS` (the keys it accepts besides
//!    `name`, `kind`, `timeout`, `send_resolved`, the TLS keys and, for
//!    every kind but `email`, `proxy_url`) and
//!    `pub(super) fn validate(&mut ReceiverFields) -> Option<FooSpec>`, which
//!    takes its keys from the raw table through the fields' helpers. A key no
//!    kind had yet is one more field of `RawReceiver` (`raw.rs`).
//! 2. `mod foo;` and one line in `receiver_kinds!` below.
//! 3. `alert/foo.rs` with its `Receiver`, and one line in
//!    `alert/registry.rs` (the compiler points there: its match is exhaustive).
//!
//! Like targets, receivers are one flat table for every kind, so an unknown
//! key keeps its position; a key of another kind is reported as not valid
//! for this one.

mod alertmanager;
mod chat;
mod email;
mod grafana;
mod opsgenie;
mod pagerduty;
mod webhook;

use std::fmt;

pub use alertmanager::{AlertmanagerSpec, DEFAULT_ALERTMANAGER_RESEND};
pub use chat::ChatSpec;
pub use email::{EmailSpec, OAuth2Login, SmtpAuth, SmtpTls};
pub use grafana::GrafanaSpec;
pub use opsgenie::{OpsgenieSpec, DEFAULT_OPSGENIE_URL};
pub use pagerduty::{PagerDutySpec, DEFAULT_PAGERDUTY_URL};
pub use webhook::WebhookSpec;

use super::validate::ReceiverFields;
use super::Secret;

/// Declares the receiver kinds, one line each:
/// `Variant("spelling", module, Spec)`. The module provides `KEYS` and
/// `validate`; `Spec` implements [`SpecSecrets`].
macro_rules! receiver_kinds {
    ($($(#[$doc:meta])* $variant:ident($name:literal, $module:ident, $spec:ty),)+) => {
        /// A receiver kind: the `kind` of a `[[receiver]]`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ReceiverKind {
            $($(#[$doc])* $variant,)+
        }

        impl ReceiverKind {
            /// Every kind, in the order messages list them.
            pub const ALL: &'static [ReceiverKind] = &[$(ReceiverKind::$variant,)+];

            /// The configuration spelling (`kind = "webhook"`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ReceiverKind::$variant => $name,)+
                }
            }

            /// The keys a receiver of this kind accepts besides `name`,
            /// `kind`, `timeout`, `send_resolved`, `tls_ca_file` and
            /// `tls_insecure_skip_verify`.
            pub(in crate::config) fn keys(self) -> &'static [&'static str] {
                match self {
                    $(ReceiverKind::$variant => $module::KEYS,)+
                }
            }

            /// Validates this kind's keys (already known to be its own);
            /// `None` when an error was reported.
            pub(in crate::config) fn validate(self, f: &mut ReceiverFields<'_, '_>) -> Option<ReceiverSpec> {
                match self {
                    $(ReceiverKind::$variant => $module::validate(f).map(ReceiverSpec::$variant),)+
                }
            }
        }

        /// Kind-specific receiver settings.
        #[derive(Debug, Clone, PartialEq)]
        pub enum ReceiverSpec {
            $($(#[$doc])* $variant($spec),)+
        }

        impl ReceiverSpec {
            /// The kind of these settings.
            pub fn kind(&self) -> ReceiverKind {
                match self {
                    $(ReceiverSpec::$variant(_) => ReceiverKind::$variant,)+
                }
            }

            /// Every secret these settings send, and as what.
            pub fn secrets(&self) -> Vec<ReceiverSecret<'_>> {
                match self {
                    $(ReceiverSpec::$variant(spec) => spec.secrets(),)+
                }
            }
        }
    };
}

receiver_kinds! {
    /// `kind = "webhook"`: Alertmanager webhook JSON.
    Webhook("webhook", webhook, WebhookSpec),
    /// `kind = "alertmanager"`: Alertmanager API v2.
    Alertmanager("alertmanager", alertmanager, AlertmanagerSpec),
    /// `kind = "pagerduty"`: Events API v2.
    PagerDuty("pagerduty", pagerduty, PagerDutySpec),
    /// `kind = "opsgenie"`: Opsgenie (or JSM) alert API.
    Opsgenie("opsgenie", opsgenie, OpsgenieSpec),
    /// `kind = "slack"`: incoming webhook.
    Slack("slack", chat, ChatSpec),
    /// `kind = "teams"`: Workflows webhook.
    Teams("teams", chat, ChatSpec),
    /// `kind = "email"`: SMTP submission.
    Email("email", email, EmailSpec),
    /// `kind = "grafana"`: annotations API.
    Grafana("grafana", grafana, GrafanaSpec),
}

impl ReceiverKind {
    /// The kind spelled `name` in the configuration, if there is one.
    pub fn from_name(name: &str) -> Option<ReceiverKind> {
        ReceiverKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ReceiverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret a receiver sends, by what it is: the alert layer's redactor
/// (`alert/redact.rs`) knows every form each one goes out in, so it can find
/// it in whatever a peer echoes back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReceiverSecret<'a> {
    /// A token or key sent as it is (a bearer token, a routing or API key).
    Token(&'a Secret),
    /// A URL that is itself the secret (Slack, Teams).
    Url(&'a Secret),
    /// A user name and password sent as HTTP basic authentication.
    HttpBasic {
        /// User name.
        username: &'a str,
        /// Password.
        password: &'a Secret,
    },
    /// A user name and password sent by SMTP `AUTH`.
    SmtpLogin {
        /// User name.
        username: &'a str,
        /// Password.
        password: &'a Secret,
    },
}

/// What every kind's settings tell the alert layer.
pub trait SpecSecrets {
    /// Every secret these settings send.
    fn secrets(&self) -> Vec<ReceiverSecret<'_>>;
}

/// How an HTTP receiver authenticates.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverAuth {
    /// No authentication.
    None,
    /// `Authorization: Bearer` from `token_file`.
    Bearer(Secret),
    /// `Authorization: Basic` from `username` and `password_file`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
}

impl ReceiverAuth {
    /// The secrets this authentication sends.
    pub fn secrets(&self) -> Vec<ReceiverSecret<'_>> {
        match self {
            ReceiverAuth::None => Vec::new(),
            ReceiverAuth::Bearer(token) => vec![ReceiverSecret::Token(token)],
            ReceiverAuth::Basic { username, password } => {
                vec![ReceiverSecret::HttpBasic { username, password }]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_found_by_name_and_list_only_their_own_keys() {
        let common = [
            "name",
            "kind",
            "timeout",
            "send_resolved",
            "tls_ca_file",
            "tls_insecure_skip_verify",
            "proxy_url",
        ];
        for kind in ReceiverKind::ALL {
            assert_eq!(ReceiverKind::from_name(kind.as_str()), Some(*kind));
            assert_eq!(kind.to_string(), kind.as_str());
            for key in common {
                assert!(!kind.keys().contains(&key), "{kind}: {key} is common");
            }
        }
        assert_eq!(ReceiverKind::from_name("pager"), None);
    }
}
