//! The descriptor limit: raised at start from the soft limit to the hard one
//! (systemd's default soft limit is 1024 while the hard limit is far higher),
//! so a busy listener and the probes have room. The listener is then kept to
//! a share of the limit (`metrics::server`), leaving the rest for probes,
//! collectors, the store and logs.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// The descriptor limit in force after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit before start-up raised it.
    pub before: u64,
    /// The soft limit now: what `open`, `socket` and `accept` are held to.
    pub soft: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, and returns the limit
/// in force; `None` when the limit cannot be read.
pub fn raise() -> Option<FdLimit> {
    let (before, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if before >= hard {
        return Some(FdLimit {
            before,
            soft: before,
        });
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => Some(FdLimit { before, soft: hard }),
        Err(e) => {
            tracing::warn!(error = %e, soft = before, hard, "cannot raise the descriptor limit");
            Some(FdLimit {
                before,
                soft: before,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let limit = raise().expect("the limit is readable");
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(limit.soft, soft);
        assert_eq!(soft, hard);
        assert!(limit.before <= limit.soft);
    }
}
