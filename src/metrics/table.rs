//! The per-target series kept outside the `prometheus` registry: one small
//! record per target, each under its own lock, in a map sorted by target name
//! so that a scrape lists targets in the registry's order without sorting
//! them. Recording touches one target's lock; only a new or removed target
//! takes the map's write lock.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use super::{protobuf, text, Format};

/// Each target's record of type `S`.
#[derive(Debug)]
pub(crate) struct SeriesTable<S> {
    map: RwLock<BTreeMap<String, Mutex<S>>>,
}

impl<S> Default for SeriesTable<S> {
    fn default() -> Self {
        SeriesTable {
            map: RwLock::new(BTreeMap::new()),
        }
    }
}

impl<S> SeriesTable<S> {
    /// Runs `f` on `target`'s record, creating it with `new` if needed.
    pub(crate) fn with<R>(
        &self,
        target: &str,
        new: impl FnOnce() -> S,
        f: impl FnOnce(&mut S) -> R,
    ) -> R {
        {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(s) = map.get(target) {
                return f(&mut s.lock().unwrap_or_else(PoisonError::into_inner));
            }
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let s = map
            .entry(target.to_string())
            .or_insert_with(|| Mutex::new(new()));
        f(s.get_mut().unwrap_or_else(PoisonError::into_inner))
    }

    /// Forgets `target`'s record.
    pub(crate) fn remove(&self, target: &str) {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(target);
    }

    /// Every record, by target name; records are locked one at a time.
    pub(crate) fn sorted(&self) -> RwLockReadGuard<'_, BTreeMap<String, Mutex<S>>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Locks one record (a poisoned lock still holds consistent numbers).
pub(crate) fn lock<S>(s: &Mutex<S>) -> std::sync::MutexGuard<'_, S> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A family's name, help, type and label names (sorted, as the registry
/// writes them).
#[derive(Debug)]
pub(crate) struct FamilyDef<F> {
    /// Which family, for the owner's dispatch.
    pub family: F,
    pub name: &'static str,
    pub help: &'static str,
    pub kind: &'static str,
    pub labels: &'static [&'static str],
}

/// Writes a family of plain samples: `rows` are label values in label-name
/// order (slots past `def.labels` unused) with their value, already in the
/// registry's order. Nothing when there are no rows, as the registry does.
pub(crate) fn write_rows<'a, F, const N: usize>(
    def: &FamilyDef<F>,
    rows: impl IntoIterator<Item = ([&'a str; N], f64)>,
    format: Format,
    out: &mut Vec<u8>,
) {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return;
    }
    if format == Format::Protobuf {
        let kind = protobuf::Kind::from_text(def.kind);
        let mut family = protobuf::FamilyBuf::new(def.name, def.help, kind);
        let (mut metric, mut scratch) = (Vec::with_capacity(128), Vec::with_capacity(64));
        for (values, v) in rows {
            metric.clear();
            for (n, value) in def.labels.iter().zip(values) {
                protobuf::label(&mut metric, n, value, &mut scratch);
            }
            protobuf::value(&mut metric, kind, v);
            family.metric(&metric);
        }
        family.finish(out);
        return;
    }
    text::family_head(out, def.name, def.help, def.kind);
    let mut labels = Vec::with_capacity(128);
    for (values, v) in rows {
        labels.clear();
        for (i, (n, value)) in def.labels.iter().zip(values).enumerate() {
            if i > 0 {
                labels.push(b',');
            }
            text::label_pair(&mut labels, n, value);
        }
        text::line(out, def.name.as_bytes(), b"", &labels, None, v);
    }
}
