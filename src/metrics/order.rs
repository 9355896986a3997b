//! The order the `prometheus` registry lists a family's series in (by label
//! values, in label-name order), as small ranks. The families kept outside
//! the registry keep their targets in a sorted map and sort rows by these
//! ranks, so a scrape never compares target names.

use std::sync::LazyLock;

use crate::sample::{FailureReason, Phase, ProbeKind};

/// Every probe kind, for the ranks.
const KINDS: [ProbeKind; 6] = [
    ProbeKind::Http,
    ProbeKind::Tcp,
    ProbeKind::Smtp,
    ProbeKind::Imap,
    ProbeKind::Pop3,
    ProbeKind::Mailflow,
];

/// Every failure reason, for the ranks.
const REASONS: [FailureReason; 9] = super::targets::REASONS;

/// `ranks[i]` is the position of `all[i]`'s label among all labels sorted.
fn ranks<T: Copy, const N: usize>(all: [T; N], label: fn(T) -> &'static str) -> [u8; N] {
    let mut by_label: [usize; N] = std::array::from_fn(|i| i);
    by_label.sort_unstable_by_key(|i| label(all[*i]));
    let mut ranks = [0; N];
    for (rank, i) in by_label.iter().enumerate() {
        ranks[*i] = rank as u8;
    }
    ranks
}

/// The slot of a phase: its position in [`Phase::ALL`] (declaration order).
pub(crate) fn phase_index(p: Phase) -> usize {
    p as usize
}

/// The rank of a `phase` label value.
pub(crate) fn phase(p: Phase) -> u8 {
    static RANKS: LazyLock<[u8; Phase::ALL.len()]> =
        LazyLock::new(|| ranks(Phase::ALL, Phase::as_str));
    RANKS[phase_index(p)]
}

/// The rank of a `kind` label value.
pub(crate) fn kind(k: ProbeKind) -> u8 {
    static RANKS: LazyLock<[u8; KINDS.len()]> = LazyLock::new(|| ranks(KINDS, ProbeKind::as_str));
    RANKS[kind_index(k)]
}

/// The slot of a kind in [`KINDS`]; a new kind does not compile until it has one.
fn kind_index(k: ProbeKind) -> usize {
    match k {
        ProbeKind::Http => 0,
        ProbeKind::Tcp => 1,
        ProbeKind::Smtp => 2,
        ProbeKind::Imap => 3,
        ProbeKind::Pop3 => 4,
        ProbeKind::Mailflow => 5,
    }
}

/// The rank of a `reason` label value.
pub(crate) fn reason(r: FailureReason) -> u8 {
    static RANKS: LazyLock<[u8; REASONS.len()]> =
        LazyLock::new(|| ranks(REASONS, FailureReason::as_str));
    let i = REASONS
        .iter()
        .position(|x| *x == r)
        .expect("REASONS lists every reason");
    RANKS[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_slots_follow_phase_all() {
        for (i, p) in Phase::ALL.iter().enumerate() {
            assert_eq!(phase_index(*p), i, "{p}");
        }
    }

    fn sorts_as_labels<T: Copy + std::fmt::Debug + PartialEq>(
        all: &[T],
        rank: fn(T) -> u8,
        label: fn(T) -> &'static str,
    ) {
        let mut by_rank = all.to_vec();
        by_rank.sort_by_key(|x| rank(*x));
        let mut by_label = all.to_vec();
        by_label.sort_by_key(|x| label(*x));
        assert_eq!(by_rank, by_label);
    }

    #[test]
    fn ranks_sort_as_the_label_values_do() {
        sorts_as_labels(&Phase::ALL, phase, Phase::as_str);
        sorts_as_labels(&KINDS, kind, ProbeKind::as_str);
        sorts_as_labels(&REASONS, reason, FailureReason::as_str);
    }

    #[test]
    fn kind_slots_match_the_table() {
        for (i, k) in KINDS.iter().enumerate() {
            assert_eq!(kind_index(*k), i, "{k}");
        }
    }
}
