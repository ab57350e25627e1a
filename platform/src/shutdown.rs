//! The signal every long-running part of a process stops on.

/// Resolves on Ctrl-C or, on Unix, SIGTERM (what container runtimes and `kill` send).
pub async fn signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error.message = %error, "Failed to listen for Ctrl-C; only SIGTERM will stop the process.");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(error.message = %error, "Failed to listen for SIGTERM; only Ctrl-C will stop the process.");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!("Received Ctrl-C; shutting down."),
        () = terminate => tracing::info!("Received SIGTERM; shutting down."),
    }
}
