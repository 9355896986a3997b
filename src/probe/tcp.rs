//! The TCP probe: resolve, connect and, with `tls = "implicit"`, a TLS
//! handshake whose version, cipher and certificate expiry are recorded.
//! Nothing is sent: the connection is closed right after.

use std::sync::Arc;

use crate::config::{TcpSpec, TlsMode};

use super::dialogue::Dialogue;
use super::{tls, ProbeError, Recorder};

/// A TCP target prepared for probing.
#[derive(Debug)]
pub struct TcpProber {
    spec: TcpSpec,
    tls: Arc<rustls::ClientConfig>,
}

impl TcpProber {
    /// Prepares the TLS client of a target.
    pub fn new(spec: &TcpSpec) -> Result<TcpProber, ProbeError> {
        Ok(TcpProber {
            spec: spec.clone(),
            tls: tls::client_config(&spec.tls_options, &[])?,
        })
    }

    /// Connects (and shakes hands), then closes.
    pub async fn probe(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        let spec = &self.spec;
        let mode = match spec.tls {
            TlsMode::Implicit => TlsMode::Implicit,
            _ => TlsMode::None,
        };
        let d = Dialogue::open(
            rec,
            "tcp",
            &spec.address,
            spec.ip_family,
            mode,
            &self.tls,
            &spec.tls_options,
        )
        .await?;
        drop(d);
        Ok(())
    }
}
