//! Ctrl-C, SIGTERM and SIGHUP while something must be undone (the deploy lock on the target engine): the
//! undo runs, then the process ends as the signal asked (exit status 128 + the signal).
//!
//! Armed once: the signals are blocked in this thread (and so in every thread started later) and one thread
//! waits for them (`sigwait`). Children are not affected: the standard library empties the signal mask of
//! every child it starts, so a Ctrl-C still stops `docker compose` at once (then the command fails and
//! releases by itself; whichever comes first releases, once). Once interrupted, no other thread starts a
//! new command ([`hold_if_interrupted`], called by the runner before every start): a deploy whose
//! `docker compose` the Ctrl-C ended must not begin its automatic rollback while the process is ending.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

type Undo = Box<dyn FnOnce() + Send>;

static UNDO: Mutex<Option<Undo>> = Mutex::new(None);
static START: Once = Once::new();
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set in the thread that undoes: its commands still run.
    static UNDOING: Cell<bool> = const { Cell::new(false) };
}

/// Never returns once an interrupt is being handled (the process ends from the handling thread), except in
/// that thread.
pub fn hold_if_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) && !UNDOING.with(Cell::get) {
        loop {
            std::thread::park();
        }
    }
}
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset and the read.
    unsafe {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        for sig in SIGNALS {
            libc::sigaddset(set.as_mut_ptr(), sig);
        }
        set.assume_init()
    }
}

/// While it lives, an interrupt runs the undo given with [`Guard::set`] before the process ends.
#[derive(Debug)]
pub struct Guard(());

impl Guard {
    /// Starts the waiting thread (once per process) and blocks the signals in the calling thread.
    pub fn arm() -> Guard {
        START.call_once(|| {
            let set = signal_set();
            // SAFETY: a valid, initialised set; only the calling thread's mask changes.
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
            std::thread::spawn(move || {
                let mut sig: libc::c_int = 0;
                // SAFETY: the set is valid and blocked in this thread too (inherited).
                while unsafe { libc::sigwait(&set, &mut sig) } != 0 {}
                UNDOING.with(|u| u.set(true));
                INTERRUPTED.store(true, Ordering::SeqCst);
                let undo = UNDO.lock().ok().and_then(|mut u| u.take());
                if let Some(undo) = undo {
                    eprintln!("\ninterrupted (signal {sig}): releasing the deploy lock first");
                    undo();
                }
                std::process::exit(128 + sig);
            });
        });
        Guard(())
    }

    /// What an interrupt undoes from now on.
    pub fn set(&self, undo: impl FnOnce() + Send + 'static) {
        if let Ok(mut slot) = UNDO.lock() {
            *slot = Some(Box::new(undo));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(mut slot) = UNDO.lock() {
            slot.take();
        }
    }
}
