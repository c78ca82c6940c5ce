//! Talks to the container engine. One implementation over bollard serves Docker and Podman
//! (Podman answers the Docker API on its socket), so there is no engine trait: tests use the
//! real engine. Every call names the thing acted on in its error.

mod detect;
mod host;

pub use detect::{detect_socket, EngineChoice, SocketSource};
pub use host::{host_capabilities, Capability, HostCapabilities};

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, NetworkCreateRequest,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    RestartContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

/// Label carried by everything lab creates; `lab down` removes exactly what has it.
pub const LABEL_INSTANCE: &str = "lab.instance";
pub const LABEL_TOPOLOGY: &str = "lab.topology";
pub const LABEL_SERVICE: &str = "lab.service";
pub const LABEL_ROLE: &str = "lab.role";
pub const LABEL_GROUP: &str = "lab.group";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Unreachable(String),
    #[error("failed to {action} {what}: {source}")]
    Call {
        action: &'static str,
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("host port {port} on 127.0.0.1 is already in use, so {container} cannot publish it; stop what holds it or pick other ports with --port-base")]
    PortTaken { container: String, port: String },
    #[error("image {image} is not present on this engine and no registry can be reached; run `lab images build` or use --images offline")]
    ImageMissing { image: String },
    #[error("network {network} is still used by {users}, which lab did not create for this instance; remove or disconnect it, then run `lab down` again")]
    NetworkInUse { network: String, users: String },
    #[error("network {network} still has an endpoint although no container is attached (a known Docker bug, moby/moby#42119); the rest of the instance is removed, and restarting the Docker daemon clears the network")]
    StaleEndpoint { network: String },
    #[error("command `{cmd}` in container {container} exited with {code}: {output}")]
    ExecFailed {
        container: String,
        cmd: String,
        code: i64,
        output: String,
    },
}

impl EngineError {
    fn call(action: &'static str, what: impl Into<String>, source: bollard::errors::Error) -> Self {
        EngineError::Call {
            action,
            what: what.into(),
            source,
        }
    }
}

/// Whether a bollard error is a 404 (the thing is already gone).
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn is_status(e: &bollard::errors::Error, code: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EngineInfo {
    pub kind: EngineKind,
    pub version: String,
    pub api_version: String,
    pub socket: String,
    pub socket_source: String,
    pub rootless: bool,
    pub cgroup_version: String,
    pub os: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Docker,
    Podman,
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        })
    }
}

/// A connected engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    pub info: EngineInfo,
}

/// Output of a command run inside a container.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub code: i64,
    pub output: String,
}

impl Engine {
    /// Connects following the documented detection order and checks the engine answers.
    pub async fn connect(choice: &EngineChoice) -> Result<Engine, EngineError> {
        let (socket, source) = detect_socket(choice).map_err(EngineError::Unreachable)?;
        let path = socket.trim_start_matches("unix://").to_string();
        let docker = Docker::connect_with_unix(&path, 120, bollard::API_DEFAULT_VERSION)
            .map_err(|e| EngineError::Unreachable(unreachable_sentence(&socket, &e.to_string())))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| EngineError::Unreachable(unreachable_sentence(&socket, &e.to_string())))?;
        let version = docker
            .version()
            .await
            .map_err(|e| EngineError::Unreachable(unreachable_sentence(&socket, &e.to_string())))?;
        let sys = docker
            .info()
            .await
            .map_err(|e| EngineError::Unreachable(unreachable_sentence(&socket, &e.to_string())))?;
        let is_podman = version
            .components
            .as_ref()
            .map(|cs| cs.iter().any(|c| c.name.to_lowercase().contains("podman")))
            .unwrap_or(false);
        let kind = if is_podman {
            EngineKind::Podman
        } else {
            EngineKind::Docker
        };
        let security = sys.security_options.clone().unwrap_or_default();
        let rootless = security.iter().any(|s| s.contains("rootless"))
            || (is_podman && !path.starts_with("/run/podman") && !path.starts_with("/var/run"));
        let info = EngineInfo {
            kind,
            version: version.version.clone().unwrap_or_default(),
            api_version: version.api_version.clone().unwrap_or_default(),
            socket: socket.clone(),
            socket_source: source.to_string(),
            rootless,
            cgroup_version: sys
                .cgroup_version
                .map(|v| format!("{v:?}").to_lowercase().replace('v', ""))
                .unwrap_or_default(),
            os: sys.operating_system.unwrap_or_default(),
        };
        Ok(Engine { docker, info })
    }

    pub fn raw(&self) -> &Docker {
        &self.docker
    }

    fn label_filter(labels: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        );
        filters
    }

    pub async fn list_containers(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<ContainerSummary>, EngineError> {
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&Self::label_filter(labels))
            .build();
        self.docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| EngineError::call("list containers labelled", fmt_labels(labels), e))
    }

    pub async fn list_networks(&self, labels: &[(&str, &str)]) -> Result<Vec<String>, EngineError> {
        let opts = ListNetworksOptionsBuilder::default()
            .filters(&Self::label_filter(labels))
            .build();
        let nets = self
            .docker
            .list_networks(Some(opts))
            .await
            .map_err(|e| EngineError::call("list networks labelled", fmt_labels(labels), e))?;
        Ok(nets.into_iter().filter_map(|n| n.name).collect())
    }

    pub async fn list_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<String>, EngineError> {
        let opts = ListVolumesOptionsBuilder::default()
            .filters(&Self::label_filter(labels))
            .build();
        let vols = self
            .docker
            .list_volumes(Some(opts))
            .await
            .map_err(|e| EngineError::call("list volumes labelled", fmt_labels(labels), e))?;
        Ok(vols
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    /// Creates a bridge network unless one of that name exists already.
    pub async fn ensure_network(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), EngineError> {
        match self.docker.inspect_network(name, None).await {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(EngineError::call("inspect network", name, e)),
        }
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels),
            ..Default::default()
        };
        match self.docker.create_network(req).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 409) => Ok(()),
            Err(e) => Err(EngineError::call("create network", name, e)),
        }
    }

    pub async fn ensure_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), EngineError> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(EngineError::call("inspect volume", name, e)),
        }
        let req = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker
            .create_volume(req)
            .await
            .map(|_| ())
            .map_err(|e| EngineError::call("create volume", name, e))
    }

    /// Removes a network. An endpoint can outlive its container for a moment after the
    /// container is removed (longer on a loaded host), so "has active endpoints" is retried
    /// for a few seconds; then it says who still uses the network, or that nobody does.
    pub async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let e = match self.docker.remove_network(name).await {
                Ok(()) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) => e,
            };
            // Docker: "has active endpoints"; Podman: "network is being used".
            let text = e.to_string();
            if !(text.contains("active endpoints") || text.contains("network is being used")) {
                return Err(EngineError::call("remove network", name, e));
            }
            if attempts < 8 {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
            let users: Vec<String> = match self.docker.inspect_network(name, None).await {
                Ok(n) => n
                    .containers
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(id, c)| c.name.unwrap_or(id))
                    .collect(),
                Err(_) => vec![],
            };
            return Err(if users.is_empty() {
                EngineError::StaleEndpoint {
                    network: name.to_string(),
                }
            } else {
                EngineError::NetworkInUse {
                    network: name.to_string(),
                    users: users.join(", "),
                }
            });
        }
    }

    /// Takes a container off a network (the network-disconnect fallback of `isolate`).
    pub async fn disconnect_network(
        &self,
        network: &str,
        container: &str,
    ) -> Result<(), EngineError> {
        let req = bollard::models::NetworkDisconnectRequest {
            container: container.to_string(),
            force: Some(false),
        };
        self.docker
            .disconnect_network(network, req)
            .await
            .map_err(|e| EngineError::call("disconnect from its network container", container, e))
    }

    /// Puts a container back on a network under `aliases`, at `ip` when given. Docker accepts
    /// an address only on networks created with a subnet; the caller retries without one.
    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        aliases: &[String],
        ip: Option<&str>,
    ) -> Result<(), EngineError> {
        let req = bollard::models::NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(bollard::models::EndpointSettings {
                aliases: Some(aliases.to_vec()),
                ipam_config: ip.map(|ip| bollard::models::EndpointIpamConfig {
                    ipv4_address: Some(ip.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        self.docker
            .connect_network(network, req)
            .await
            .map_err(|e| EngineError::call("reconnect to its network container", container, e))
    }

    pub async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let opts = RemoveVolumeOptionsBuilder::default().force(true).build();
        match self.docker.remove_volume(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(EngineError::call("remove volume", name, e)),
        }
    }

    pub async fn inspect_container(
        &self,
        name: &str,
    ) -> Result<Option<ContainerInspectResponse>, EngineError> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(EngineError::call("inspect container", name, e)),
        }
    }

    pub async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<(), EngineError> {
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        match self.docker.create_container(Some(opts), body.clone()).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Err(EngineError::ImageMissing {
                image: body.image.unwrap_or_default(),
            }),
            Err(e) => Err(EngineError::call("create container", name, e)),
        }
    }

    pub async fn start_container(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.start_container(name, None).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 304) => Ok(()),
            Err(e) => {
                let msg = e.to_string();
                if msg.contains("already allocated")
                    || msg.contains("address already in use")
                    || msg.contains("bind: address")
                {
                    let port = extract_port(&msg).unwrap_or_else(|| "?".into());
                    return Err(EngineError::PortTaken {
                        container: name.to_string(),
                        port,
                    });
                }
                Err(EngineError::call("start container", name, e))
            }
        }
    }

    pub async fn remove_container(&self, name: &str) -> Result<(), EngineError> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        match self.docker.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // Already being removed by someone else: it will be gone.
            Err(e) if is_status(&e, 409) => Ok(()),
            Err(e) => Err(EngineError::call("remove container", name, e)),
        }
    }

    pub async fn kill_container(&self, name: &str, signal: &str) -> Result<(), EngineError> {
        let opts = KillContainerOptionsBuilder::default()
            .signal(signal)
            .build();
        self.docker
            .kill_container(name, Some(opts))
            .await
            .map_err(|e| EngineError::call("kill container", name, e))
    }

    pub async fn stop_container(&self, name: &str, grace: Duration) -> Result<(), EngineError> {
        let opts = StopContainerOptionsBuilder::default()
            .t(grace.as_secs() as i32)
            .build();
        match self.docker.stop_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 304) => Ok(()),
            Err(e) => Err(EngineError::call("stop container", name, e)),
        }
    }

    pub async fn restart_container(&self, name: &str, grace: Duration) -> Result<(), EngineError> {
        let opts = RestartContainerOptionsBuilder::default()
            .t(grace.as_secs() as i32)
            .build();
        self.docker
            .restart_container(name, Some(opts))
            .await
            .map_err(|e| EngineError::call("restart container", name, e))
    }

    /// Freezes the container. The cgroup v1 freezer gives up ("unable to freeze") when a
    /// task does not stop in time, which busy CPU workers on a loaded host make likely (seen
    /// with two stress-ng workers inside): asked again up to 4 times, 250 ms apart.
    pub async fn pause_container(&self, name: &str) -> Result<(), EngineError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.docker.pause_container(name).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 5 && e.to_string().contains("unable to freeze") => {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                Err(e) => return Err(EngineError::call("pause container", name, e)),
            }
        }
    }

    pub async fn unpause_container(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.unpause_container(name).await {
            Ok(()) => Ok(()),
            // Not paused (or gone): the heal has nothing to do.
            Err(e) if is_status(&e, 409) || is_not_found(&e) => Ok(()),
            Err(e) => Err(EngineError::call("unpause container", name, e)),
        }
    }

    /// Creates (does not start) an exec of `cmd` in a container, its output attached or not.
    async fn create_exec(
        &self,
        container: &str,
        cmd: &[String],
        attach: bool,
    ) -> Result<String, EngineError> {
        self.docker
            .create_exec(
                container,
                bollard::exec::CreateExecOptions {
                    cmd: Some(cmd.to_vec()),
                    attach_stdout: Some(attach),
                    attach_stderr: Some(attach),
                    ..Default::default()
                },
            )
            .await
            .map(|c| c.id)
            .map_err(|e| EngineError::call("create exec in container", container, e))
    }

    /// Runs a command in a container and collects its combined output.
    pub async fn exec(&self, container: &str, cmd: &[String]) -> Result<ExecOutput, EngineError> {
        use bollard::exec::StartExecResults;
        let id = self.create_exec(container, cmd, true).await?;
        let mut text = String::new();
        match self
            .docker
            .start_exec(&id, None)
            .await
            .map_err(|e| EngineError::call("start exec in container", container, e))?
        {
            StartExecResults::Attached { mut output, .. } => {
                while let Some(chunk) = output.next().await {
                    match chunk {
                        Ok(c) => text.push_str(&String::from_utf8_lossy(&c.into_bytes())),
                        Err(e) => {
                            return Err(EngineError::call(
                                "read exec output in container",
                                container,
                                e,
                            ))
                        }
                    }
                }
            }
            StartExecResults::Detached => {}
        }
        let inspect = self
            .docker
            .inspect_exec(&id)
            .await
            .map_err(|e| EngineError::call("inspect exec in container", container, e))?;
        Ok(ExecOutput {
            code: inspect.exit_code.unwrap_or(-1),
            output: text,
        })
    }

    /// Starts a command in a container and returns without waiting for it. The engine's exec
    /// keeps it as a child of the runtime, which reaps it: unlike a process left behind by a
    /// shell, it never becomes a zombie of the container's PID 1.
    pub async fn exec_detached(&self, container: &str, cmd: &[String]) -> Result<(), EngineError> {
        use bollard::exec::StartExecOptions;
        let id = self.create_exec(container, cmd, false).await?;
        self.docker
            .start_exec(
                &id,
                Some(StartExecOptions {
                    detach: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| EngineError::call("start exec in container", container, e))?;
        Ok(())
    }

    /// Runs a command and fails unless it exits 0.
    pub async fn exec_ok(&self, container: &str, cmd: &[String]) -> Result<String, EngineError> {
        let out = self.exec(container, cmd).await?;
        if out.code != 0 {
            return Err(EngineError::ExecFailed {
                container: container.to_string(),
                cmd: cmd.join(" "),
                code: out.code,
                output: out.output.trim().to_string(),
            });
        }
        Ok(out.output)
    }

    pub async fn logs(&self, container: &str, tail: Option<usize>) -> Result<String, EngineError> {
        let mut b = LogsOptionsBuilder::default().stdout(true).stderr(true);
        if let Some(n) = tail {
            b = b.tail(&n.to_string());
        }
        let mut stream = self.docker.logs(container, Some(b.build()));
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => text.push_str(&String::from_utf8_lossy(&c.into_bytes())),
                Err(e) if is_not_found(&e) => {
                    return Err(EngineError::call("read logs of container", container, e))
                }
                Err(e) => return Err(EngineError::call("read logs of container", container, e)),
            }
        }
        Ok(text)
    }

    /// Whether an image (by reference) is present locally.
    pub async fn image_present(&self, reference: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(EngineError::call("inspect image", reference, e)),
        }
    }

    /// Labels of a local image, if present.
    pub async fn image_labels(
        &self,
        reference: &str,
    ) -> Result<Option<HashMap<String, String>>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(img) => Ok(Some(img.config.and_then(|c| c.labels).unwrap_or_default())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(EngineError::call("inspect image", reference, e)),
        }
    }

    /// Local image references (repo:tag) whose name starts with `prefix` (empty: all).
    pub async fn list_image_tags(&self, prefix: &str) -> Result<Vec<String>, EngineError> {
        let opts = ListImagesOptionsBuilder::default().all(false).build();
        let imgs = self
            .docker
            .list_images(Some(opts))
            .await
            .map_err(|e| EngineError::call("list images on", self.info.socket.clone(), e))?;
        let mut tags: Vec<String> = imgs
            .into_iter()
            .flat_map(|i| i.repo_tags.into_iter())
            .filter(|t| t.starts_with(prefix) && t != "<none>:<none>")
            .collect();
        tags.sort();
        Ok(tags)
    }

    /// Tries to pull an image; returns false (not an error) when no registry answers.
    pub async fn try_pull(&self, reference: &str) -> bool {
        use bollard::query_parameters::CreateImageOptionsBuilder;
        let opts = CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        let mut stream = self.docker.create_image(Some(opts), None, None);
        let pulled = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(item) = stream.next().await {
                if item.is_err() {
                    return false;
                }
            }
            true
        })
        .await;
        matches!(pulled, Ok(true))
    }
}

fn fmt_labels(labels: &[(&str, &str)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn extract_port(msg: &str) -> Option<String> {
    // Docker: "Bind for 127.0.0.1:16001 failed: port is already allocated"
    // Podman: "rootlessport listen tcp 127.0.0.1:16001: bind: address already in use"
    let idx = msg.find("127.0.0.1:")?;
    let rest = &msg[idx + "127.0.0.1:".len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    (!digits.is_empty()).then_some(digits)
}

fn unreachable_sentence(socket: &str, err: &str) -> String {
    format!(
        "No container engine answers at {socket} ({err}); start one (Docker: `sudo systemctl start docker` or Docker Desktop; Podman: `systemctl --user start podman.socket` or `podman system service --time=0 &`) or point lab at it with --engine / LAB_ENGINE."
    )
}
