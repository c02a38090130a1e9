//! The temporary files of this process that are not committed yet, and the signal handler
//! that removes them when the process is interrupted.
//!
//! Every [`AtomicFile`](crate::fs::AtomicFile) temporary is registered here while it exists.
//! [`remove_temporary_files_on_signals`] installs a handler for SIGINT, SIGTERM and SIGHUP
//! that deletes them and exits with the shell's code for the signal (128 + its number:
//! 130, 143, 129). A SIGKILL cannot be handled; what it leaves behind is a temporary file whose
//! name ends in `.partial` and whose first byte is not the `.npy` magic, so it never loads
//! as a result.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::error::{Error, Result};

/// Paths of the temporary files that exist and are not committed yet.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The pending list, locked. The signal handler keeps it locked until the process exits,
/// so a temporary file is created and registered, or committed and unregistered, either
/// wholly before the handler runs or not at all.
pub(crate) fn lock() -> MutexGuard<'static, Vec<PathBuf>> {
    PENDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Forgets `path` (it was renamed into place or removed); `pending` is the locked list.
pub(crate) fn forget(pending: &mut Vec<PathBuf>, path: &Path) {
    pending.retain(|p| p != path);
}

/// Installs, once per process, a handler that removes every uncommitted temporary file
/// on SIGINT, SIGTERM or SIGHUP and then exits with 130, 143 or 129.
///
/// Meant for programs (the `vecprop` binary calls it first thing); a library user who
/// handles signals in their own way need not call it. Calling it again does nothing.
pub fn remove_temporary_files_on_signals() -> Result<()> {
    static INSTALLED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|e| e.to_string())?;
            std::thread::Builder::new()
                .name("vecprop-signals".into())
                .spawn(move || {
                    if let Some(signal) = signals.forever().next() {
                        let pending = lock();
                        for path in pending.iter() {
                            let _ = std::fs::remove_file(path);
                        }
                        // Exit while holding the lock: nothing is committed any more.
                        std::process::exit(128 + signal);
                    }
                })
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|reason| Error::io("<signal handler>", std::io::Error::other(reason)))
}
