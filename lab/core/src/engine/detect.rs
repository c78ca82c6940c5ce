//! Finds the engine socket in the documented order: `--engine`/`LAB_ENGINE`,
//! `DOCKER_HOST`/`CONTAINER_HOST`, `/var/run/docker.sock`, `/run/podman/podman.sock`,
//! `$XDG_RUNTIME_DIR/podman/podman.sock`.

use std::path::Path;

/// What the user asked for (flag or `LAB_ENGINE`), already merged by the CLI.
#[derive(Debug, Clone, Default)]
pub struct EngineChoice {
    /// `docker`, `podman`, or a socket (`unix:///path` or `/path`).
    pub requested: Option<String>,
    /// Environment as seen by the process (injected so tests can vary it).
    pub docker_host: Option<String>,
    pub container_host: Option<String>,
    pub xdg_runtime_dir: Option<String>,
}

impl EngineChoice {
    pub fn from_env(requested: Option<String>) -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        EngineChoice {
            requested: requested.or_else(|| get("LAB_ENGINE")),
            docker_host: get("DOCKER_HOST"),
            container_host: get("CONTAINER_HOST"),
            xdg_runtime_dir: get("XDG_RUNTIME_DIR"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketSource {
    Flag,
    DockerHost,
    ContainerHost,
    DockerDefault,
    PodmanRootful,
    PodmanRootless,
}

impl std::fmt::Display for SocketSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SocketSource::Flag => "--engine / LAB_ENGINE",
            SocketSource::DockerHost => "DOCKER_HOST",
            SocketSource::ContainerHost => "CONTAINER_HOST",
            SocketSource::DockerDefault => "default Docker socket",
            SocketSource::PodmanRootful => "rootful Podman socket",
            SocketSource::PodmanRootless => "rootless Podman socket",
        })
    }
}

fn unix(p: &str) -> String {
    if p.starts_with("unix://") {
        p.to_string()
    } else {
        format!("unix://{p}")
    }
}

fn exists(uri: &str) -> bool {
    Path::new(uri.trim_start_matches("unix://")).exists()
}

fn podman_candidates(c: &EngineChoice) -> Vec<(String, SocketSource)> {
    let mut v = vec![(unix("/run/podman/podman.sock"), SocketSource::PodmanRootful)];
    if let Some(x) = &c.xdg_runtime_dir {
        v.push((
            unix(&format!("{x}/podman/podman.sock")),
            SocketSource::PodmanRootless,
        ));
    }
    v
}

/// Returns the socket URI to use and why, or one sentence saying how to start an engine.
pub fn detect_socket(c: &EngineChoice) -> Result<(String, SocketSource), String> {
    if let Some(req) = &c.requested {
        return match req.as_str() {
            "docker" => {
                let s = unix("/var/run/docker.sock");
                if exists(&s) {
                    Ok((s, SocketSource::Flag))
                } else {
                    Err("Docker was asked for but /var/run/docker.sock does not exist; start Docker (`sudo systemctl start docker` or Docker Desktop).".into())
                }
            }
            "podman" => podman_candidates(c)
                .into_iter()
                .find(|(s, _)| exists(s))
                .map(|(s, _)| (s, SocketSource::Flag))
                .ok_or_else(|| "Podman was asked for but no Podman socket exists; start it with `systemctl --user start podman.socket` (rootless), `sudo systemctl start podman.socket`, or `podman system service --time=0 &`.".into()),
            other => {
                if other.starts_with("tcp://") || other.starts_with("ssh://") {
                    return Err(format!("engine address {other} is not supported; lab talks to a local unix socket (unix:///path)."));
                }
                let s = unix(other);
                if exists(&s) {
                    Ok((s, SocketSource::Flag))
                } else {
                    Err(format!("the engine socket {} does not exist; start the engine or fix --engine / LAB_ENGINE.", s.trim_start_matches("unix://")))
                }
            }
        };
    }
    for (var, src) in [
        (&c.docker_host, SocketSource::DockerHost),
        (&c.container_host, SocketSource::ContainerHost),
    ] {
        if let Some(v) = var {
            if !v.starts_with("unix://") && !v.starts_with('/') {
                return Err(format!("{src} is {v}, but lab only talks to a local unix socket; unset it or set it to unix:///path."));
            }
            return Ok((unix(v), src));
        }
    }
    let mut candidates = vec![(unix("/var/run/docker.sock"), SocketSource::DockerDefault)];
    candidates.extend(podman_candidates(c));
    candidates
        .into_iter()
        .find(|(s, _)| exists(s))
        .ok_or_else(|| {
            "No container engine found (looked at /var/run/docker.sock, /run/podman/podman.sock and $XDG_RUNTIME_DIR/podman/podman.sock); start one: Docker with `sudo systemctl start docker` or Docker Desktop, Podman with `systemctl --user start podman.socket` or `podman system service --time=0 &`.".into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_socket_wins_over_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("e.sock");
        std::fs::write(&sock, b"").expect("write");
        let c = EngineChoice {
            requested: Some(sock.display().to_string()),
            docker_host: Some("unix:///nonexistent".into()),
            ..Default::default()
        };
        let (s, src) = detect_socket(&c).expect("found");
        assert_eq!(src, SocketSource::Flag);
        assert!(s.ends_with("e.sock"));
    }

    #[test]
    fn docker_host_comes_before_default_sockets() {
        let c = EngineChoice {
            docker_host: Some("unix:///somewhere/d.sock".into()),
            container_host: Some("unix:///other".into()),
            ..Default::default()
        };
        assert_eq!(
            detect_socket(&c).expect("found"),
            ("unix:///somewhere/d.sock".into(), SocketSource::DockerHost)
        );
    }

    #[test]
    fn tcp_docker_host_is_refused_with_a_sentence() {
        let c = EngineChoice {
            docker_host: Some("tcp://10.0.0.1:2375".into()),
            ..Default::default()
        };
        let e = detect_socket(&c).expect_err("refused");
        assert!(e.contains("unix socket"), "{e}");
    }

    #[test]
    fn missing_requested_socket_says_how_to_start() {
        let c = EngineChoice {
            requested: Some("/nonexistent/podman.sock".into()),
            ..Default::default()
        };
        let e = detect_socket(&c).expect_err("missing");
        assert!(e.contains("does not exist"), "{e}");
    }
}
