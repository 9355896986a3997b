//! `[agent.web]`: TLS, basic authentication and client networks of the
//! metrics endpoint.

use super::files::{load_certs, load_identity, pair};
use super::*;
use crate::config::raw::RawWeb;

pub(super) fn build_web(
    c: &mut Checker<'_>,
    wp: &KeyPath,
    base: &Path,
    raw: Option<RawWeb>,
) -> WebConfig {
    let Some(raw) = raw else {
        return WebConfig::default();
    };
    let keys = ("tls_cert_file", "tls_key_file");
    let tls = pair(c, wp, keys, raw.tls_cert_file, raw.tls_key_file)
        .and_then(|files| load_identity(c, wp, keys, base, files))
        .map(|identity| WebTls {
            identity,
            client_ca: Vec::new(),
        });
    let tls = match (tls, raw.tls_client_ca_file) {
        (Some(mut tls), Some(file)) => {
            tls.client_ca =
                load_certs(c, &wp.key("tls_client_ca_file"), base, file).unwrap_or_default();
            Some(tls)
        }
        (None, Some(_)) => {
            c.error_at(
                &wp.key("tls_client_ca_file"),
                "needs tls_cert_file and tls_key_file",
            );
            None
        }
        (tls, None) => tls,
    };
    let basic_auth_users = bcrypt_users(
        c,
        &wp.key("basic_auth_users"),
        raw.basic_auth_users.unwrap_or_default(),
    );
    let max_connections = match raw.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(n) if (1..=MAX_CONNECTIONS_LIMIT as u64).contains(&n) => n as usize,
        Some(_) => {
            c.error_at(
                &wp.key("max_connections"),
                format!("must be between 1 and {MAX_CONNECTIONS_LIMIT}"),
            );
            DEFAULT_MAX_CONNECTIONS
        }
    };
    let mut allowed_networks = Vec::new();
    for (i, text) in raw.allowed_networks.unwrap_or_default().iter().enumerate() {
        match text.parse::<net::IpNet>() {
            Ok(n) => allowed_networks.push(n),
            Err(e) => c.error_at(&wp.key("allowed_networks").index(i), e),
        }
    }
    WebConfig {
        tls,
        basic_auth_users,
        allowed_networks,
        max_connections,
    }
}

/// Checks a table of users and bcrypt hashes (`basic_auth_users`,
/// `write_users`) at `key`, keeping the valid ones.
pub(super) fn bcrypt_users(
    c: &mut Checker<'_>,
    key: &KeyPath,
    users: std::collections::BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut valid = Vec::new();
    for (user, hash) in users {
        if user.is_empty() || user.contains(':') {
            c.error_at(key, format!("invalid user name {user:?}"));
        } else {
            match hash.parse::<bcrypt::HashParts>().map(|h| h.get_cost()) {
                Err(_) => c.error_at(
                    &key.key(&user),
                    "expected a bcrypt hash (\"$2b$...\"; make one with `mailpulse hash-password`)",
                ),
                // Every failed check costs this much CPU (and unknown users
                // are checked at the highest configured cost): bounded, so
                // a typo cannot make one check take days.
                Ok(cost) if cost > MAX_BCRYPT_COST => c.error_at(
                    &key.key(&user),
                    format!("bcrypt cost {cost} is above the maximum {MAX_BCRYPT_COST}"),
                ),
                Ok(cost) if cost < MIN_BCRYPT_COST => c.error_at(
                    &key.key(&user),
                    format!("bcrypt cost {cost} is below the minimum {MIN_BCRYPT_COST}"),
                ),
                Ok(_) => valid.push((user, hash)),
            }
        }
    }
    valid
}
