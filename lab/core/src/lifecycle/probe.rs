//! Readiness probes run from the host through published ports (never container addresses,
//! which rootless Podman and macOS cannot route).

use std::time::Duration;

use crate::topology::Probe;

/// A client for a Redis-protocol port on 127.0.0.1, authenticated with the instance password.
pub fn client(port: u16, password: Option<&str>) -> Result<redis::Client, String> {
    let mut settings = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
    if let Some(pw) = password {
        settings = settings.set_password(pw);
    }
    let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
        "127.0.0.1".into(),
        port,
    ))
    .map_err(|e| e.to_string())?
    .set_redis_settings(settings);
    redis::Client::open(info).map_err(|e| e.to_string())
}

/// Opens an authenticated connection to a Redis/Valkey/Sentinel port on 127.0.0.1.
pub async fn redis_conn(
    port: u16,
    password: Option<&str>,
    timeout: Duration,
) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = client(port, password)?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    tokio::time::timeout(
        timeout,
        client.get_multiplexed_async_connection_with_config(&cfg),
    )
    .await
    .map_err(|_| format!("no answer from 127.0.0.1:{port} within {timeout:?}"))?
    .map_err(|e| e.to_string())
}

/// Sends one command with a timeout.
pub async fn cmd<T: redis::FromRedisValue>(
    conn: &mut redis::aio::MultiplexedConnection,
    c: &redis::Cmd,
    timeout: Duration,
) -> Result<T, String> {
    tokio::time::timeout(timeout, c.query_async::<T>(conn))
        .await
        .map_err(|_| format!("no reply within {timeout:?}"))?
        .map_err(|e| e.to_string())
}

/// One attempt of a probe against a host port. Ok means ready.
pub async fn probe_once(
    probe: &Probe,
    host_port: u16,
    password: Option<&str>,
) -> Result<(), String> {
    let t = Duration::from_secs(2);
    match probe {
        Probe::Redis { .. } => {
            let mut c = redis_conn(host_port, password, t).await?;
            let pong: String = cmd(&mut c, &redis::cmd("PING"), t).await?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(format!("PING answered {pong}"))
            }
        }
        Probe::Tcp { .. } => {
            tokio::time::timeout(t, tokio::net::TcpStream::connect(("127.0.0.1", host_port)))
                .await
                .map_err(|_| "connect timed out".to_string())?
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Probe::Http { path, .. } => {
            let url = format!("http://127.0.0.1:{host_port}{path}");
            let client = reqwest::Client::builder()
                .timeout(t)
                .build()
                .map_err(|e| e.to_string())?;
            let r = client.get(&url).send().await.map_err(|e| e.to_string())?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(format!("GET {url} answered {}", r.status()))
            }
        }
    }
}
