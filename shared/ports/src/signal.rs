//! Process signals: when a long-running consumer (a worker, the autoscaler's loop) is asked
//! to stop. With the [`clock`](crate::clock), the only other input that does not come
//! through a port.

/// Resolves on SIGTERM (what ECS, Kubernetes and systemd send) or Ctrl-C. Where SIGTERM
/// cannot be listened for (not Unix, or the handler cannot be installed, which is logged),
/// only Ctrl-C; if that cannot be listened for either, it resolves at once.
///
/// ```no_run
/// # async fn f() {
/// tokio::select! {
///     _ = eventide_ports::signal::shutdown() => println!("stopping"),
///     _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => println!("one more pass"),
/// }
/// # }
/// ```
///
/// # Cancel safety
/// Cancel safe: dropping it only stops listening.
pub async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops this process");
            }
        }
    }
    // If Ctrl-C cannot be listened for either, this resolves at once.
    let _ = tokio::signal::ctrl_c().await;
}
