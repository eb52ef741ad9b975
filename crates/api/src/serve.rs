//! Serving the router to clients we do not trust: a cap on connections, a deadline for every
//! request's headers, and the `Host` a loopback API answers to.
//!
//! - **At most [`Limits::connections_max`] connections are open**; one more is closed at once,
//!   so clients can never hold the process's open files (the peer-to-peer listener needs
//!   them too).
//! - **Every request's headers must arrive within [`Limits::header_read_timeout`]**, the
//!   wait for the next request on an idle connection included, so a slowloris client or an
//!   idle one gives its slot back.
//! - **Bound to loopback, the API answers only requests addressed to loopback**
//!   (`localhost`, `127.0.0.1`, `[::1]`): a web page the user opens cannot reach it through a
//!   name of its own that resolves to 127.0.0.1 (DNS rebinding).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::ApiError;

/// What one API server allows its clients.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once.
    pub connections_max: usize,
    /// How long a request's headers may take, counted from when the server starts waiting
    /// for them (on an idle connection, from the end of the previous answer).
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connections_max: 64,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` within `limits` until the task is dropped.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits) {
    let local = listener.local_addr().ok();
    let router = match local {
        Some(address) if address.ip().is_loopback() => {
            router.layer(middleware::from_fn(only_loopback_hosts))
        }
        _ => router,
    };
    let slots = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, most likely: wait for some to come back rather
                // than spin on the error.
                tracing::warn!("the API cannot accept a connection: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Full: this connection is closed at once, and costs nothing more.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Refuses a request whose `Host` is not a loopback name (421, Misdirected Request).
async fn only_loopback_hosts(request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    match host {
        Some(host) if is_loopback_host(host) => next.run(request).await,
        _ => ApiError {
            status: StatusCode::MISDIRECTED_REQUEST,
            code: "misdirected",
            message: format!(
                "this API answers requests to localhost, 127.0.0.1 or [::1] only, not to \
                 host {:?}",
                host.unwrap_or("")
            ),
        }
        .into_response(),
    }
}

/// Whether `host` (a `Host` header: a name or address, maybe a port) is loopback.
fn is_loopback_host(host: &str) -> bool {
    if let Ok(address) = host.parse::<SocketAddr>() {
        return address.ip().is_loopback();
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_with_and_without_ports() {
        for host in [
            "localhost",
            "LOCALHOST:8332",
            "127.0.0.1",
            "127.0.0.1:18445",
            "[::1]",
            "[::1]:18445",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "attacker.example",
            "attacker.example:18445",
            "localhost.attacker.example",
            "10.0.0.1:80",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
