//! The integration tests: one test binary (one link for all of them), a
//! module per area. Each drives the real `mailpulse` binary or the library
//! against real servers on 127.0.0.1; `support` is what they share.
//!
//! Run one area with `cargo test --test integration AREA::`, one test with
//! `cargo test --test integration AREA::NAME`.

mod support;

mod alert_alertmanager;
mod alert_e2e;
mod alert_email;
mod alert_misbehaving;
mod alert_outage_hour;
mod alert_proxy;
mod alert_receiver_panic;
mod alert_secrets;
mod alerts;
mod cli_docs;
mod commands;
mod config;
mod dashboards;
mod fleet;
mod fleet_status;
mod fuzz_corpus;
mod hostile_fleet;
mod hostile_text;
mod incidents;
mod kill9;
mod lifecycle;
mod logging;
mod metrics;
mod native_histograms;
mod probe_hostile;
mod probe_http;
mod probe_mail;
mod probe_nginx;
mod probe_ntlm;
mod probe_tls;
mod replay;
mod rules;
mod scrape_flood;
mod soak;
mod soak_fleet;
mod soak_report;
mod status_page;
mod store_faults;
mod tidy;
mod web;
mod web_limits;
mod window;
mod window_paging;
mod window_summary;
