//! The panic boundary of the state store. redb trusts its file: a page
//! overwritten with garbage can make it panic while decoding (an index out of
//! bounds, an invalid page type) instead of returning an error. Every call
//! into redb that reads the file goes through [`catch`], which turns such a
//! panic into an error carrying its message and location, so damaged store
//! contents never take down the agent (or a CLI command).
//!
//! A caught panic is not printed by the default panic hook: a hook installed
//! once stays silent for panics raised inside [`catch`] on the current thread
//! (the caller logs them as one error line) and hands every other panic to
//! the hook that was there before.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`catch`].
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// Where the last panic caught on this thread happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the hook that keeps caught panics quiet (once per process).
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, returning a panic inside it as `Err` with its message and
/// location (e.g. `index out of bounds ... at .../btree_base.rs:35`).
///
/// Whatever `f` touched may be half-updated after a panic; callers drop it
/// (the database handle, the transaction) rather than use it again.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let outer = CATCHING.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(outer));
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        match LOCATION.with(|l| l.borrow_mut().take()) {
            Some(at) => format!("{message} at {at}"),
            None => message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_place() {
        assert_eq!(catch(|| 41 + 1), Ok(42));
        let err = catch(|| -> u32 { panic!("page type {} is invalid", 7) }).unwrap_err();
        assert!(err.starts_with("page type 7 is invalid at "), "{err}");
        assert!(err.contains("unwind.rs"), "{err}");
        // Nested: the inner panic is caught by the inner call, the outer goes on.
        let outer = catch(|| catch(|| -> () { panic!("inner") }).unwrap_err());
        assert!(outer.unwrap().starts_with("inner at "));
    }
}
