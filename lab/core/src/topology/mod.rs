//! Topologies are compose files (valid for `docker compose` and `podman compose`) with lab's
//! metadata under `x-lab`. This module finds, interpolates, parses strictly and validates
//! them into a plan the lifecycle code can execute; every error names file:line:column.

pub mod interpolate;
pub mod locate;
pub mod model;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

pub use model::*;

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("{file}:{line}:{column}: {message}")]
    At {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error(
        "unknown topology `{name}`; known topologies: {known} (or give a path to a compose file)"
    )]
    Unknown { name: String, known: String },
    #[error("{0}")]
    Usage(String),
}

/// Where a value came from; the first that has one wins (command line > environment >
/// profile in the file > the compose file's own default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Cli,
    Env,
    Profile,
    Default,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ResolvedSetting {
    pub var: String,
    pub value: String,
    pub source: Source,
}

/// The one function for config precedence: command line over environment over file over
/// defaults.
pub fn resolve_setting(
    cli: Option<&str>,
    env: Option<&str>,
    profile: Option<&str>,
    default: Option<&str>,
) -> Option<(String, Source)> {
    cli.map(|v| (v.to_string(), Source::Cli))
        .or_else(|| env.map(|v| (v.to_string(), Source::Env)))
        .or_else(|| profile.map(|v| (v.to_string(), Source::Profile)))
        .or_else(|| default.map(|v| (v.to_string(), Source::Default)))
}

/// Looks for `compose/<name>.yaml` in the project directory (see [`project_dir`]), or takes
/// a path to a compose file.
pub fn find(name_or_path: &str, project: &Path) -> Result<PathBuf, TopologyError> {
    let p = Path::new(name_or_path);
    if name_or_path.ends_with(".yaml")
        || name_or_path.ends_with(".yml")
        || p.components().count() > 1
    {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        return Err(TopologyError::File {
            file: name_or_path.to_string(),
            message: "no such compose file".into(),
        });
    }
    for ext in ["yaml", "yml"] {
        let f = project
            .join("compose")
            .join(format!("{name_or_path}.{ext}"));
        if f.is_file() {
            return Ok(f);
        }
    }
    Err(TopologyError::Unknown {
        name: name_or_path.to_string(),
        known: known(project).join(", "),
    })
}

/// Names of the topologies shipped in `<project>/compose/`.
pub fn known(project: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(project.join("compose"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let p = e.path();
                    let ext = p.extension()?.to_str()?;
                    (ext == "yaml" || ext == "yml")
                        .then(|| p.file_stem()?.to_str().map(str::to_string))
                        .flatten()
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The project directory: `$LAB_HOME`, else the nearest ancestor of the working directory
/// (then of the executable) that holds `compose/`.
pub fn project_dir() -> PathBuf {
    if let Ok(h) = std::env::var("LAB_HOME") {
        if !h.is_empty() {
            return PathBuf::from(h);
        }
    }
    let mut starts = vec![];
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        starts.push(exe);
    }
    for s in starts {
        for a in s.ancestors() {
            if a.join("compose").is_dir() {
                return a.to_path_buf();
            }
        }
    }
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub profile: Option<String>,
    pub flavor: Option<String>,
    /// `--set name=value`, by setting name (or by variable name).
    pub sets: Vec<(String, String)>,
    /// The process environment.
    pub env: HashMap<String, String>,
    /// Variables lab provides: `LAB_INSTANCE`, `LAB_PASSWORD`, chosen image references...
    pub provided: HashMap<String, String>,
}

/// A published port, host side before the instance shift.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PortMap {
    pub host_port: u16,
    pub container_port: u16,
    pub proto: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    Volume {
        volume: String,
        target: String,
        read_only: bool,
    },
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
    },
}

#[derive(Debug, Clone)]
pub struct HealthPlan {
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
}

/// One service, fully resolved.
#[derive(Debug, Clone)]
pub struct ServicePlan {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub ports: Vec<PortMap>,
    pub networks: Vec<(String, Vec<String>)>,
    pub mounts: Vec<Mount>,
    pub healthcheck: Option<HealthPlan>,
    pub depends_on: Vec<(String, Condition)>,
    pub cap_add: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub hostname: Option<String>,
    pub stop_grace: Duration,
    pub stop_signal: Option<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub init: Option<bool>,
    pub tmpfs: Vec<String>,
    pub role: Role,
    pub group: Option<String>,
    pub zone: Option<String>,
    pub probe: Option<Probe>,
}

impl ServicePlan {
    /// Host port (before the instance shift) publishing this container port.
    pub fn host_port_for(&self, container_port: u16) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.container_port == container_port)
            .map(|p| p.host_port)
    }
}

#[derive(Debug, Clone)]
pub struct Topology {
    pub name: String,
    pub file: PathBuf,
    pub lab: XLab,
    pub profile: String,
    pub flavor: String,
    pub settings: IndexMap<String, ResolvedSetting>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    pub services: Vec<ServicePlan>,
    /// Every variable used for interpolation (for `--json` and reports; no secrets).
    pub vars: HashMap<String, String>,
}

struct Src<'a> {
    file: String,
    text: &'a str,
}

impl Src<'_> {
    fn at(&self, pos: Option<(usize, usize)>, message: impl Into<String>) -> TopologyError {
        let (line, column) = pos.unwrap_or((1, 1));
        TopologyError::At {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }
    fn key(&self, path: &[&str], message: impl Into<String>) -> TopologyError {
        self.at(locate::key(self.text, path), message)
    }
    fn value(&self, path: &[&str], needle: &str, message: impl Into<String>) -> TopologyError {
        self.at(locate::value_in(self.text, path, needle), message)
    }
}

fn display_path(p: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    cwd.and_then(|c| p.strip_prefix(&c).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}

fn parse_text(file: &str, text: &str) -> Result<ComposeFile, TopologyError> {
    serde_norway::from_str::<ComposeFile>(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        let mut message = e.to_string();
        if let Some(idx) = message.find(" at line ") {
            message.truncate(idx);
        }
        if message.contains("did not match any variant of untagged enum") {
            message = format!("value has the wrong shape ({message})");
        }
        TopologyError::At {
            file: file.to_string(),
            line,
            column,
            message,
        }
    })
}

fn interp(file: &str, text: &str, vars: &HashMap<String, String>) -> Result<String, TopologyError> {
    interpolate::interpolate(text, vars).map_err(|e| TopologyError::At {
        file: file.to_string(),
        line: e.line,
        column: e.column,
        message: e.message,
    })
}

/// Reads only the `x-lab` part (interpolated with the environment alone), to learn the
/// topology's settings, flavours and images before the real load.
pub fn load_meta(path: &Path, env: &HashMap<String, String>) -> Result<XLab, TopologyError> {
    let file = display_path(path);
    let text = std::fs::read_to_string(path).map_err(|e| TopologyError::File {
        file: file.clone(),
        message: format!("cannot read: {e}"),
    })?;
    let t = interp(&file, &text, env)?;
    Ok(parse_text(&file, &t)?.x_lab)
}

/// Parses a compose-style duration (`1m30s`, `500ms`, `10s`, or plain seconds). Durations
/// with units are read by the same parser as drill files; never panics.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    // Bare numbers are seconds. Only plain decimals: "inf", "nan" and exponents are not durations.
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let n: f64 = s.parse().ok()?;
        return Duration::try_from_secs_f64(n).ok();
    }
    crate::scenario::duration(s)
}

fn parse_port(s: &str) -> Result<(String, PortMap), String> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((a, p)) => (a, p.to_string()),
        None => (s, "tcp".to_string()),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (ip, host, cont) = match parts.as_slice() {
        [ip, h, c] => (ip.to_string(), *h, *c),
        [_, _] | [_] => {
            return Err(format!(
                "port `{s}` must name the host address and port, like 127.0.0.1:16001:6379 (lab publishes on 127.0.0.1 only)"
            ))
        }
        _ => return Err(format!("port `{s}` is not HOST_IP:HOST_PORT:CONTAINER_PORT")),
    };
    let host_port: u16 = host
        .parse()
        .map_err(|_| format!("host port `{host}` in `{s}` is not a port number"))?;
    let container_port: u16 = cont
        .parse()
        .map_err(|_| format!("container port `{cont}` in `{s}` is not a port number"))?;
    Ok((
        ip,
        PortMap {
            host_port,
            container_port,
            proto,
        },
    ))
}

/// Loads a topology: interpolates with every variable, parses strictly, validates.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Topology, TopologyError> {
    let file = display_path(path);
    let raw = std::fs::read_to_string(path).map_err(|e| TopologyError::File {
        file: file.clone(),
        message: format!("cannot read: {e}"),
    })?;
    let src = Src {
        file: file.clone(),
        text: &raw,
    };
    let meta = parse_text(&file, &interp(&file, &raw, &opts.env)?)?.x_lab;

    // Profile, flavour, settings.
    let profile = opts
        .profile
        .clone()
        .or_else(|| opts.env.get("LAB_PROFILE").cloned())
        .unwrap_or_else(|| meta.default_profile.clone());
    let profiles: Vec<&String> = {
        let mut v: Vec<&String> = meta
            .settings
            .values()
            .flat_map(|s| s.profiles.keys())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    if !meta.settings.is_empty() && !profiles.iter().any(|p| **p == profile) {
        return Err(TopologyError::Usage(format!(
            "unknown profile `{profile}` for {file}; known profiles: {}",
            profiles
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for (k, _) in &opts.sets {
        if !meta.settings.contains_key(k) && !meta.settings.values().any(|s| &s.var == k) {
            return Err(TopologyError::Usage(format!(
                "unknown setting `{k}` for {file}; settable: {}",
                meta.settings.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let mut settings = IndexMap::new();
    for (name, s) in &meta.settings {
        let cli = opts
            .sets
            .iter()
            .rev()
            .find(|(k, _)| k == name || *k == s.var)
            .map(|(_, v)| v.as_str());
        let prof = s.profiles.get(&profile).map(|v| v.to_string());
        if let Some((value, source)) = resolve_setting(
            cli,
            opts.env.get(&s.var).map(String::as_str),
            prof.as_deref(),
            None,
        ) {
            settings.insert(
                name.clone(),
                ResolvedSetting {
                    var: s.var.clone(),
                    value,
                    source,
                },
            );
        }
    }
    let flavor = opts
        .flavor
        .clone()
        .or_else(|| opts.env.get("LAB_FLAVOR").cloned())
        .or_else(|| meta.flavors.first().cloned())
        .unwrap_or_default();
    if !meta.flavors.is_empty() && !meta.flavors.contains(&flavor) {
        return Err(TopologyError::Usage(format!(
            "unknown flavor `{flavor}` for {file}; choose one of: {}",
            meta.flavors.join(", ")
        )));
    }

    let mut vars = opts.env.clone();
    for s in settings.values() {
        vars.insert(s.var.clone(), s.value.clone());
    }
    vars.insert("LAB_FLAVOR".into(), flavor.clone());
    vars.insert("LAB_PROFILE".into(), profile.clone());
    for (k, v) in &opts.provided {
        vars.insert(k.clone(), v.clone());
    }
    let text = interp(&file, &raw, &vars)?;
    let compose = parse_text(&file, &text)?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();

    // Validate and plan.
    let declared_nets: Vec<String> = compose.networks.keys().cloned().collect();
    let declared_vols: Vec<String> = compose.volumes.keys().cloned().collect();
    let mut services = Vec::new();
    let mut uses_default_net = false;
    for (name, svc) in &compose.services {
        let sp = |k: &'static str| -> Vec<&str> { vec!["services", name.as_str(), k] };
        let mut ports = Vec::new();
        for p in &svc.ports {
            let (ip, pm) = parse_port(p).map_err(|m| src.value(&sp("ports"), p, m))?;
            if ip != "127.0.0.1" {
                return Err(src.value(
                    &sp("ports"),
                    p,
                    format!("port `{p}` is published on {ip}; lab publishes on 127.0.0.1 only, write 127.0.0.1:{}:{}", pm.host_port, pm.container_port),
                ));
            }
            ports.push(pm);
        }
        let networks: Vec<(String, Vec<String>)> = match &svc.networks {
            None => {
                uses_default_net = true;
                vec![("default".into(), vec![])]
            }
            Some(n) => {
                let mut v = vec![];
                for net in n.names() {
                    if !declared_nets.contains(&net) {
                        return Err(src.value(
                            &sp("networks"),
                            &net,
                            format!("service {name} joins network `{net}`, which is not declared under the top-level `networks:`"),
                        ));
                    }
                    let aliases = n.aliases(&net);
                    v.push((net, aliases));
                }
                v
            }
        };
        let mut mounts = Vec::new();
        for v in &svc.volumes {
            let parts: Vec<&str> = v.split(':').collect();
            let (source, target, mode) = match parts.as_slice() {
                [s, t] => (*s, *t, ""),
                [s, t, m] => (*s, *t, *m),
                _ => {
                    return Err(src.value(
                        &sp("volumes"),
                        v,
                        format!("volume `{v}` is not SOURCE:TARGET[:ro]"),
                    ))
                }
            };
            let read_only = mode.split(',').any(|m| m == "ro");
            if source.starts_with('.') || source.starts_with('/') || source.starts_with('~') {
                let abs = if source.starts_with('/') {
                    PathBuf::from(source)
                } else {
                    dir.join(source)
                };
                if !abs.exists() {
                    return Err(src.value(
                        &sp("volumes"),
                        source,
                        format!("config file `{source}` mounted into {name} does not exist (looked for {})", abs.display()),
                    ));
                }
                let abs = abs.canonicalize().unwrap_or(abs);
                mounts.push(Mount::Bind {
                    source: abs,
                    target: target.to_string(),
                    read_only,
                });
            } else {
                if !declared_vols.iter().any(|d| d == source) {
                    return Err(src.value(
                        &sp("volumes"),
                        v,
                        format!("service {name} mounts volume `{source}`, which is not declared under the top-level `volumes:`"),
                    ));
                }
                mounts.push(Mount::Volume {
                    volume: source.to_string(),
                    target: target.to_string(),
                    read_only,
                });
            }
        }
        let depends_on = svc
            .depends_on
            .as_ref()
            .map(|d| d.entries())
            .unwrap_or_default();
        for (dep, _) in &depends_on {
            if !compose.services.contains_key(dep) {
                return Err(src.value(
                    &sp("depends_on"),
                    dep,
                    format!(
                        "service {name} depends on `{dep}`, which is not a service of this file"
                    ),
                ));
            }
        }
        let dur =
            |field: &'static str, v: &Option<String>| -> Result<Option<Duration>, TopologyError> {
                match v {
                    None => Ok(None),
                    Some(s) => parse_duration(s).map(Some).ok_or_else(|| {
                        src.value(
                            &["services", name.as_str(), "healthcheck", field],
                            s,
                            format!("`{s}` is not a duration (like 2s, 500ms, 1m30s)"),
                        )
                    }),
                }
            };
        let healthcheck = match &svc.healthcheck {
            Some(h) if h.disable != Some(true) => Some(HealthPlan {
                test: h
                    .test
                    .as_ref()
                    .map(|t| match t {
                        StringOrList::String(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                        StringOrList::List(v) => v.clone(),
                    })
                    .unwrap_or_default(),
                interval: dur("interval", &h.interval)?,
                timeout: dur("timeout", &h.timeout)?,
                retries: h.retries,
                start_period: dur("start_period", &h.start_period)?,
            }),
            _ => None,
        };
        let stop_grace = match &svc.stop_grace_period {
            None => Duration::from_secs(10),
            Some(s) => parse_duration(s).ok_or_else(|| {
                src.value(
                    &sp("stop_grace_period"),
                    s,
                    format!("`{s}` is not a duration (like 10s)"),
                )
            })?,
        };
        let meta_node = meta.nodes.get(name);
        if let Some(probe) = meta_node.and_then(|n| n.probe.as_ref()) {
            if !ports.iter().any(|p| p.container_port == probe.port()) {
                return Err(src.key(
                    &["x-lab", "nodes", name.as_str(), "probe"],
                    format!(
                        "the probe of {name} uses port {}, which the service does not publish",
                        probe.port()
                    ),
                ));
            }
        }
        services.push(ServicePlan {
            name: name.clone(),
            image: svc.image.clone(),
            command: svc.command.as_ref().map(StringOrList::to_vec),
            entrypoint: svc.entrypoint.as_ref().map(StringOrList::to_vec),
            env: svc
                .environment
                .as_ref()
                .map(ListOrDict::to_pairs)
                .unwrap_or_default(),
            ports,
            networks,
            mounts,
            healthcheck,
            depends_on,
            cap_add: svc.cap_add.clone(),
            labels: svc
                .labels
                .as_ref()
                .map(ListOrDict::to_pairs)
                .unwrap_or_default(),
            hostname: svc.hostname.clone(),
            stop_grace,
            stop_signal: svc.stop_signal.clone(),
            user: svc.user.clone(),
            working_dir: svc.working_dir.clone(),
            init: svc.init,
            tmpfs: svc.tmpfs.clone(),
            role: meta_node.map(|n| n.role).unwrap_or(Role::Service),
            group: meta_node.and_then(|n| n.group.clone()),
            zone: meta_node.and_then(|n| n.zone.clone()),
            probe: meta_node.and_then(|n| n.probe.clone()),
        });
    }
    for node in meta.nodes.keys() {
        if !compose.services.contains_key(node) {
            return Err(src.key(
                &["x-lab", "nodes", node.as_str()],
                format!("x-lab describes node `{node}`, which is not a service of this file"),
            ));
        }
    }
    for step in &meta.init {
        let names: Vec<&String> = match step {
            InitStep::ClusterCreate { nodes, .. } => nodes.iter().collect(),
            InitStep::Exec { service, .. } => vec![service],
        };
        for n in names {
            if !compose.services.contains_key(n) {
                return Err(src.value(
                    &["x-lab", "init"],
                    n,
                    format!("init step names `{n}`, which is not a service of this file"),
                ));
            }
        }
    }
    // Port numbers must be unique on the host.
    let mut seen: HashMap<u16, &str> = HashMap::new();
    for s in &services {
        for p in &s.ports {
            if let Some(other) = seen.insert(p.host_port, &s.name) {
                return Err(src.value(
                    &["services", s.name.as_str(), "ports"],
                    &p.host_port.to_string(),
                    format!(
                        "host port {} is published by both {other} and {}",
                        p.host_port, s.name
                    ),
                ));
            }
        }
    }
    let mut networks = declared_nets;
    if uses_default_net {
        networks.push("default".into());
    }
    let topo = Topology {
        name: compose.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("topology")
                .to_string()
        }),
        file: path.to_path_buf(),
        lab: meta,
        profile,
        flavor,
        settings,
        networks,
        volumes: declared_vols,
        services,
        vars: vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("LAB_") && k != "LAB_PASSWORD")
            .collect(),
    };
    topo.startup_order()
        .map_err(|m| src.key(&["services"], m))?;
    Ok(topo)
}

impl Topology {
    pub fn service(&self, name: &str) -> Option<&ServicePlan> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Services in waves: each wave depends only on earlier ones. A cycle is an error.
    pub fn startup_order(&self) -> Result<Vec<Vec<String>>, String> {
        let mut done: Vec<String> = vec![];
        let mut waves = vec![];
        while done.len() < self.services.len() {
            let wave: Vec<String> = self
                .services
                .iter()
                .filter(|s| !done.contains(&s.name))
                .filter(|s| s.depends_on.iter().all(|(d, _)| done.contains(d)))
                .map(|s| s.name.clone())
                .collect();
            if wave.is_empty() {
                let left: Vec<String> = self
                    .services
                    .iter()
                    .filter(|s| !done.contains(&s.name))
                    .map(|s| s.name.clone())
                    .collect();
                return Err(format!("depends_on has a cycle among: {}", left.join(", ")));
            }
            done.extend(wave.iter().cloned());
            waves.push(wave);
        }
        Ok(waves)
    }

    /// Node names by role, in file order.
    pub fn with_role(&self, role: Role) -> Vec<&ServicePlan> {
        self.services.iter().filter(|s| s.role == role).collect()
    }

    /// Groups (Sentinel master names / shards) in file order.
    pub fn groups(&self) -> Vec<String> {
        let mut v: Vec<String> = vec![];
        for s in &self.services {
            if let Some(g) = &s.group {
                if !v.contains(g) {
                    v.push(g.clone());
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("2x"), None);
        assert_eq!(parse_duration("s"), None);
    }

    #[test]
    fn absurd_durations_are_refused_not_panics() {
        for s in [
            "inf",
            "NaN",
            "1e400",
            "-1",
            "99999999999999999999999s",
            "1e3s",
        ] {
            assert_eq!(parse_duration(s), None, "{s}");
        }
        assert_eq!(parse_duration("18446744073709551615h"), None);
    }

    #[test]
    fn ports() {
        let (ip, p) = parse_port("127.0.0.1:16001:6379").expect("ok");
        assert_eq!(ip, "127.0.0.1");
        assert_eq!((p.host_port, p.container_port), (16001, 6379));
        assert!(parse_port("6379").is_err());
        assert!(parse_port("127.0.0.1:x:6379").is_err());
    }

    #[test]
    fn precedence_is_cli_env_profile_default() {
        assert_eq!(
            resolve_setting(Some("1"), Some("2"), Some("3"), Some("4")),
            Some(("1".into(), Source::Cli))
        );
        assert_eq!(
            resolve_setting(None, Some("2"), Some("3"), Some("4")),
            Some(("2".into(), Source::Env))
        );
        assert_eq!(
            resolve_setting(None, None, Some("3"), Some("4")),
            Some(("3".into(), Source::Profile))
        );
        assert_eq!(
            resolve_setting(None, None, None, Some("4")),
            Some(("4".into(), Source::Default))
        );
        assert_eq!(resolve_setting(None, None, None, None), None);
    }
}
