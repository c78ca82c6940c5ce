//! Builds the redis-family offline images on a real engine, runs them, and checks a rebuild is
//! skipped. Needs a container engine and Debian's mirror (or a cached rootfs). Without an
//! engine it prints why and passes, unless LAB_REQUIRE_ENGINE=1. LAB_TEST_PODMAN=1 runs the
//! same checks against rootful Podman on /run/podman/podman.sock (see .ci/podman-setup.sh).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::{FutureExt, StreamExt};
use lab_core::engine::{Engine, EngineChoice, LABEL_INSTANCE};
use lab_core::images::{self, BuildStatus, LABEL_OFFLINE, LABEL_RECIPE_HASH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INSTANCE: &str = "test-images";
const PODMAN_SOCKET: &str = "unix:///run/podman/podman.sock";
const VALKEY: &str = "localhost/lab/valkey:8.1";
const REDIS: &str = "localhost/lab/redis:8.0";
const EXPORTER: &str = "localhost/lab/redis-exporter:1";
const NETWORK: &str = "lab-test-images-net";

/// Docker and Podman runs share the rootfs cache; one build at a time keeps them from writing
/// the same tarball together.
static BUILD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env_is(k: &str, v: &str) -> bool {
    std::env::var(k).is_ok_and(|x| x == v)
}

async fn connect(choice: EngineChoice, what: &str, required: bool) -> Option<Engine> {
    match Engine::connect(&choice).await {
        Ok(e) => Some(e),
        Err(e) if required => panic!("{what} is required here but not reachable: {e}"),
        Err(e) => {
            eprintln!(
                "skipping: {what} is not reachable ({e}); set LAB_REQUIRE_ENGINE=1 to fail instead"
            );
            None
        }
    }
}

#[tokio::test]
async fn images_redis_family_on_default_engine() {
    let Some(engine) = connect(
        EngineChoice::from_env(None),
        "the container engine",
        env_is("LAB_REQUIRE_ENGINE", "1"),
    )
    .await
    else {
        return;
    };
    exercise(&engine).await;
}

#[tokio::test]
async fn images_redis_family_on_podman() {
    if !env_is("LAB_TEST_PODMAN", "1") {
        eprintln!("skipping: LAB_TEST_PODMAN is not 1");
        return;
    }
    let choice = EngineChoice {
        requested: Some(PODMAN_SOCKET.into()),
        ..Default::default()
    };
    let Some(engine) = connect(choice, "rootful Podman", true).await else {
        return;
    };
    assert_eq!(
        engine.info.kind.to_string(),
        "podman",
        "{PODMAN_SOCKET} is not Podman"
    );
    exercise(&engine).await;
}

async fn exercise(engine: &Engine) {
    let kind = engine.info.kind;
    let recipe = images::recipes()
        .into_iter()
        .find(|r| r.name == "redis-family")
        .expect("redis-family recipe");
    let hash = recipe.hash();

    let first = {
        let _guard = BUILD_LOCK.lock().await;
        images::build(engine, &["valkey".to_string()], false)
            .await
            .unwrap_or_else(|e| panic!("build on {kind}: {e}"))
    };
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].recipe, "redis-family");
    eprintln!(
        "{kind}: first build {} in {:.1} s: {:?}",
        first[0].status, first[0].seconds, first[0].tags
    );
    for tag in [VALKEY, REDIS, EXPORTER] {
        assert!(
            first[0].tags.iter().any(|t| t == tag),
            "{tag} not in {first:?}"
        );
        let labels = engine
            .image_labels(tag)
            .await
            .expect("inspect image")
            .unwrap_or_else(|| panic!("{tag} missing on {kind} after build"));
        assert_eq!(
            labels.get(LABEL_RECIPE_HASH),
            Some(&hash),
            "{tag}: {labels:?}"
        );
        assert_eq!(labels.get(LABEL_OFFLINE).map(String::as_str), Some("true"));
    }
    if first[0].status != BuildStatus::UpToDate {
        // A fresh import also tags the full upstream versions.
        assert!(
            first[0]
                .tags
                .iter()
                .any(|t| t.starts_with("localhost/lab/valkey:8.1.")),
            "{first:?}"
        );
    }

    cleanup(engine).await;
    let checks = AssertUnwindSafe(run_checks(engine)).catch_unwind().await;
    cleanup(engine).await;
    if let Err(panic) = checks {
        std::panic::resume_unwind(panic);
    }

    let second = {
        let _guard = BUILD_LOCK.lock().await;
        images::build(engine, &["redis-exporter".to_string()], false)
            .await
            .unwrap_or_else(|e| panic!("second build on {kind}: {e}"))
    };
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].status, BuildStatus::UpToDate, "{second:?}");

    let listed = images::list(engine).await.expect("list");
    for tag in [VALKEY, REDIS, EXPORTER] {
        assert!(
            listed.contains(&(tag.to_string(), true)),
            "{tag} in {listed:?}"
        );
    }
}

/// Everything that creates containers; `exercise` removes them whatever happens here.
async fn run_checks(engine: &Engine) {
    let kind = engine.info.kind;
    let out = run_to_end(
        engine,
        "lab-test-images-valkey-version",
        VALKEY,
        &["valkey-server", "--version"],
    )
    .await;
    assert!(
        out.contains("v=8.1."),
        "valkey-server --version on {kind} printed: {out}"
    );
    let out = run_to_end(
        engine,
        "lab-test-images-redis-version",
        REDIS,
        &["redis-server", "--version"],
    )
    .await;
    assert!(
        out.contains("v=8.0."),
        "redis-server --version on {kind} printed: {out}"
    );
    let out = run_to_end(
        engine,
        "lab-test-images-data",
        VALKEY,
        &["sh", "-c", "touch /data/x && echo writable"],
    )
    .await;
    assert!(out.contains("writable"), "/data on {kind}: {out}");

    // A server on a user network, reached by name from another container and from the host
    // through a port published on 127.0.0.1.
    let mut labels = HashMap::new();
    labels.insert(LABEL_INSTANCE.to_string(), INSTANCE.to_string());
    engine
        .raw()
        .create_network(NetworkCreateRequest {
            name: NETWORK.into(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("create network on {kind}: {e}"));
    let port = free_port();
    let server = "lab-test-images-server";
    let mut bindings = HashMap::new();
    bindings.insert(
        "6379/tcp".to_string(),
        Some(vec![PortBinding {
            host_ip: Some("127.0.0.1".into()),
            host_port: Some(port.to_string()),
        }]),
    );
    create(
        engine,
        server,
        ContainerCreateBody {
            image: Some(VALKEY.into()),
            cmd: Some(strings(&[
                "valkey-server",
                "--bind",
                "0.0.0.0",
                "--protected-mode",
                "no",
                "--save",
                "",
                "--dir",
                "/data",
            ])),
            labels: Some(labels.clone()),
            exposed_ports: Some(vec!["6379/tcp".into()]),
            host_config: Some(HostConfig {
                network_mode: Some(NETWORK.into()),
                port_bindings: Some(bindings),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    start(engine, server).await;
    let reply = ping_host_port(port).await;
    assert_eq!(reply, "+PONG", "valkey on 127.0.0.1:{port} ({kind})");

    let out = run_on_network(
        engine,
        "lab-test-images-client",
        &[
            "sh",
            "-c",
            &format!("getent hosts {server} && valkey-cli -h {server} -p 6379 ping"),
        ],
    )
    .await;
    assert!(
        out.contains("PONG"),
        "client on {NETWORK} ({kind}) printed: {out}"
    );
    assert!(out.contains(server), "getent on {kind} printed: {out}");
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

async fn create(engine: &Engine, name: &str, body: ContainerCreateBody) {
    let opts = CreateContainerOptionsBuilder::default().name(name).build();
    engine
        .raw()
        .create_container(Some(opts), body)
        .await
        .unwrap_or_else(|e| panic!("create container {name} on {}: {e}", engine.info.kind));
}

async fn start(engine: &Engine, name: &str) {
    engine
        .raw()
        .start_container(name, None)
        .await
        .unwrap_or_else(|e| panic!("start container {name} on {}: {e}", engine.info.kind));
}

/// Runs a command in a fresh labelled container and returns its output once it exits.
async fn run_to_end(engine: &Engine, name: &str, image: &str, cmd: &[&str]) -> String {
    run_container(engine, name, image, cmd, None).await
}

async fn run_on_network(engine: &Engine, name: &str, cmd: &[&str]) -> String {
    run_container(engine, name, VALKEY, cmd, Some(NETWORK)).await
}

async fn run_container(
    engine: &Engine,
    name: &str,
    image: &str,
    cmd: &[&str],
    network: Option<&str>,
) -> String {
    let mut labels = HashMap::new();
    labels.insert(LABEL_INSTANCE.to_string(), INSTANCE.to_string());
    create(
        engine,
        name,
        ContainerCreateBody {
            image: Some(image.into()),
            cmd: Some(strings(cmd)),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: network.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    start(engine, name).await;
    let waited = tokio::time::timeout(
        Duration::from_secs(60),
        engine.raw().wait_container(name, None).next(),
    )
    .await;
    let code = match waited {
        Ok(Some(Ok(r))) => r.status_code,
        Ok(Some(Err(e))) => panic!("wait for {name} on {}: {e}", engine.info.kind),
        Ok(None) => panic!(
            "wait for {name} on {} ended without a status",
            engine.info.kind
        ),
        Err(_) => panic!("{name} on {} did not exit within 60 s", engine.info.kind),
    };
    let opts = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .build();
    let mut logs = engine.raw().logs(name, Some(opts));
    let mut out = String::new();
    while let Some(chunk) = logs.next().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("logs of {name}: {e}"));
        out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    assert_eq!(
        code, 0,
        "{name} on {} exited {code}: {out}",
        engine.info.kind
    );
    out
}

/// Sends PING to the published port until the server answers (bounded: 30 s).
async fn ping_host_port(port: u16) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = String::from("no attempt");
    while tokio::time::Instant::now() < deadline {
        let attempt = tokio::time::timeout(Duration::from_secs(2), async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            s.write_all(b"PING\r\n").await?;
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..n]).trim().to_string())
        })
        .await;
        match attempt {
            Ok(Ok(reply)) if !reply.is_empty() => return reply,
            Ok(Ok(_)) => last = "connection closed without a reply".into(),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("nothing answered PING on 127.0.0.1:{port} within 30 s: {last}");
}

/// Removes every container and network this test labels, on this engine only.
async fn cleanup(engine: &Engine) {
    let labels = [(LABEL_INSTANCE, INSTANCE)];
    if let Ok(containers) = engine.list_containers(&labels).await {
        for c in containers {
            let Some(id) = c.id else { continue };
            let opts = RemoveContainerOptionsBuilder::default().force(true).build();
            if let Err(e) = engine.raw().remove_container(&id, Some(opts)).await {
                eprintln!("cleanup: could not remove container {id}: {e}");
            }
        }
    }
    if let Ok(networks) = engine.list_networks(&labels).await {
        for n in networks {
            if let Err(e) = engine.remove_network(&n).await {
                eprintln!("cleanup: could not remove network {n}: {e}");
            }
        }
    }
}
