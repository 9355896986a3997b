//! The alert side of the receiver registry: which [`Receiver`] each
//! receiver kind builds, one line per kind. The configuration side
//! (`config/receivers/mod.rs`) declares the kinds and their settings; the
//! match below is exhaustive, so a kind added there fails to compile until
//! it has its line here. [`super::build_receiver`] wraps what this builds in
//! the receiver's redactor.

use std::sync::Arc;

use super::*;
use crate::config::alerting::{ReceiverConfig, ReceiverSpec};

/// Builds the receiver of `config`'s kind.
pub(super) fn build(
    config: &ReceiverConfig,
    ctx: &ReceiverContext,
) -> Result<Arc<dyn Receiver>, String> {
    match &config.spec {
        ReceiverSpec::Webhook(s) => shared(webhook::WebhookReceiver::new(config, s, ctx)),
        ReceiverSpec::Alertmanager(s) => {
            shared(alertmanager::AlertmanagerReceiver::new(config, s, ctx))
        }
        ReceiverSpec::PagerDuty(s) => shared(pagerduty::PagerDutyReceiver::new(config, s, ctx)),
        ReceiverSpec::Opsgenie(s) => shared(opsgenie::OpsgenieReceiver::new(config, s, ctx)),
        ReceiverSpec::Slack(s) => shared(slack::SlackReceiver::new(config, s)),
        ReceiverSpec::Teams(s) => shared(teams::TeamsReceiver::new(config, s)),
        ReceiverSpec::Email(s) => shared(email::EmailReceiver::new(config, s, ctx)),
        ReceiverSpec::Grafana(s) => shared(grafana::GrafanaReceiver::new(config, s, ctx)),
    }
}

/// A built receiver, as the delivery loop holds it.
fn shared<R: Receiver + 'static>(built: Result<R, String>) -> Result<Arc<dyn Receiver>, String> {
    Ok(Arc::new(built?))
}
