//! The shutdown signal: SIGTERM (docker stop, compose, orchestrators) or SIGINT (Ctrl-C).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

pub async fn signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; draining in-flight requests"),
        () = terminate => tracing::info!("SIGTERM received; draining in-flight requests"),
    }
}

/// Marks the app as shutting down (readiness 503) when `signal` completes.
pub async fn flag_on(signal: impl Future<Output = ()>, flag: Arc<AtomicBool>) {
    signal.await;
    flag.store(true, Ordering::SeqCst);
}
