//! The compose-spec subset lab reads, and the `x-lab` extension. Strict: an unknown key is an
//! error with file:line:column, never silently ignored.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeFile {
    #[serde(default)]
    pub name: Option<String>,
    pub services: IndexMap<String, Service>,
    #[serde(default)]
    pub networks: IndexMap<String, Option<NetworkDef>>,
    #[serde(default)]
    pub volumes: IndexMap<String, Option<VolumeDef>>,
    #[serde(rename = "x-lab")]
    pub x_lab: XLab,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDef {
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub labels: Option<ListOrDict>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeDef {
    #[serde(default)]
    pub labels: Option<ListOrDict>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub image: String,
    #[serde(default)]
    pub command: Option<StringOrList>,
    #[serde(default)]
    pub entrypoint: Option<StringOrList>,
    #[serde(default)]
    pub environment: Option<ListOrDict>,
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub networks: Option<ServiceNetworks>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default)]
    pub depends_on: Option<DependsOn>,
    #[serde(default)]
    pub cap_add: Vec<String>,
    #[serde(default)]
    pub labels: Option<ListOrDict>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub stop_grace_period: Option<String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub init: Option<bool>,
    #[serde(default)]
    pub tmpfs: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    String(String),
    List(Vec<String>),
}

impl StringOrList {
    /// Compose's string form is split like a shell would, without expansion.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StringOrList::List(v) => v.clone(),
            StringOrList::String(s) => s.split_whitespace().map(str::to_string).collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ListOrDict {
    Dict(IndexMap<String, Option<Scalar>>),
    List(Vec<String>),
}

impl ListOrDict {
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        match self {
            ListOrDict::Dict(m) => m
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_ref().map(Scalar::to_string).unwrap_or_default(),
                    )
                })
                .collect(),
            ListOrDict::List(v) => v
                .iter()
                .map(|s| match s.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (s.clone(), String::new()),
                })
                .collect(),
        }
    }
}

/// A YAML scalar that compose accepts where a string is meant (`PORT: 6379`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Str(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ServiceNetworks {
    List(Vec<String>),
    Dict(IndexMap<String, Option<ServiceNetwork>>),
}

impl ServiceNetworks {
    pub fn names(&self) -> Vec<String> {
        match self {
            ServiceNetworks::List(v) => v.clone(),
            ServiceNetworks::Dict(m) => m.keys().cloned().collect(),
        }
    }
    pub fn aliases(&self, net: &str) -> Vec<String> {
        match self {
            ServiceNetworks::List(_) => vec![],
            ServiceNetworks::Dict(m) => m
                .get(net)
                .and_then(|n| n.as_ref())
                .map(|n| n.aliases.clone())
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetwork {
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    #[serde(default)]
    pub test: Option<StringOrList>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub start_period: Option<String>,
    #[serde(default)]
    pub disable: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DependsOn {
    List(Vec<String>),
    Dict(IndexMap<String, DependsOnCond>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependsOnCond {
    pub condition: Condition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

impl DependsOn {
    pub fn entries(&self) -> Vec<(String, Condition)> {
        match self {
            DependsOn::List(v) => v
                .iter()
                .map(|s| (s.clone(), Condition::ServiceStarted))
                .collect(),
            DependsOn::Dict(m) => m.iter().map(|(k, c)| (k.clone(), c.condition)).collect(),
        }
    }
}

// ---------------------------------------------------------------- x-lab

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XLab {
    pub description: String,
    /// The host ports written in this file start at this number; each lab instance shifts
    /// them to its own block so instances run side by side.
    pub port_base: u16,
    /// Generate a per-instance password and pass it as `LAB_PASSWORD`.
    #[serde(default)]
    pub password: bool,
    /// Server flavours this topology can run (`valkey`, `redis`); the first is the default.
    #[serde(default)]
    pub flavors: Vec<String>,
    #[serde(default = "default_profile")]
    pub default_profile: String,
    #[serde(default)]
    pub settings: IndexMap<String, Setting>,
    #[serde(default)]
    pub images: IndexMap<String, ImageSpec>,
    #[serde(default)]
    pub nodes: IndexMap<String, NodeMeta>,
    #[serde(default)]
    pub init: Vec<InitStep>,
    #[serde(default)]
    pub verify: Option<Verify>,
}

fn default_profile() -> String {
    "drill".into()
}

/// A knob a user can set with `--set name=value` or pick through a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    /// The compose variable the value is passed as.
    pub var: String,
    #[serde(default)]
    pub help: String,
    /// Value per profile (`seed`, `drill`...).
    pub profiles: BTreeMap<String, Scalar>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// The compose variable the chosen reference is passed as.
    pub var: String,
    pub upstream: ImageRef,
    pub offline: ImageRef,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ImageRef {
    One(String),
    PerFlavor(BTreeMap<String, String>),
}

impl ImageRef {
    pub fn for_flavor(&self, flavor: &str) -> Option<&str> {
        match self {
            ImageRef::One(s) => Some(s),
            ImageRef::PerFlavor(m) => m.get(flavor).map(String::as_str),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeMeta {
    pub role: Role,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub probe: Option<Probe>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Master,
    Replica,
    Sentinel,
    ClusterNode,
    Exporter,
    Service,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Master => "master",
            Role::Replica => "replica",
            Role::Sentinel => "sentinel",
            Role::ClusterNode => "cluster-node",
            Role::Exporter => "exporter",
            Role::Service => "service",
        })
    }
}

/// How lab knows a node is ready. Ports are container ports; lab probes them through the
/// published host port.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", try_from = "OneOf<ProbeForm>")]
pub enum Probe {
    /// PING (after AUTH when the topology has a password) answers PONG.
    Redis {
        port: u16,
    },
    Tcp {
        port: u16,
    },
    Http {
        port: u16,
        #[serde(default = "slash")]
        path: String,
    },
}

fn slash() -> String {
    "/".into()
}

impl Probe {
    pub fn port(&self) -> u16 {
        match self {
            Probe::Redis { port } | Probe::Tcp { port } | Probe::Http { port, .. } => *port,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "OneOf<InitForm>")]
pub enum InitStep {
    /// Forms a Redis Cluster from these nodes: the first `nodes.len() / (replicas + 1)` become
    /// masters with the 16384 slots split evenly; the rest replicate them in order.
    ClusterCreate { nodes: Vec<String>, replicas: u8 },
    /// Runs a command in a service's container; must exit 0.
    Exec {
        service: String,
        command: Vec<String>,
    },
}

/// The success criteria checked after `up` (from the seed document).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "OneOf<VerifyForm>")]
pub enum Verify {
    /// Every group's master has its replica with a green link; every Sentinel agrees on the
    /// master of each group and the quorum is reachable.
    Sentinel { port: u16, quorum: u8 },
    /// `cluster_state:ok`, 16384 slots covered, each master with at least one replica.
    Cluster { port: u16 },
}

// The YAML crate reads externally tagged enums only from `!tags`; compose users write
// `{redis: {port: 6379}}`. These forms accept that shape strictly (one key, known names).

/// A map that must hold exactly one of the variant keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct OneOf<T>(pub T);

macro_rules! one_of {
    ($form:ident, $target:ident, $what:literal, { $($key:ident : $ty:ty => $conv:expr),+ $(,)? }) => {
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $form {
            $( #[serde(default)] pub $key: Option<$ty>, )+
        }
        impl TryFrom<OneOf<$form>> for $target {
            type Error = String;
            fn try_from(f: OneOf<$form>) -> Result<Self, String> {
                let f = f.0;
                let mut found: Vec<$target> = vec![];
                $( if let Some(v) = f.$key { found.push(($conv)(v)); } )+
                let names = [$(stringify!($key)),+].join(", ");
                match found.len() {
                    1 => Ok(found.remove(0)),
                    0 => Err(format!("{} needs one of: {}", $what, names)),
                    _ => Err(format!("{} takes exactly one of: {}", $what, names)),
                }
            }
        }
    };
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortOnly {
    pub port: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpForm {
    pub port: u16,
    #[serde(default = "slash")]
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterCreateForm {
    pub nodes: Vec<String>,
    pub replicas: u8,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecForm {
    pub service: String,
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelForm {
    pub port: u16,
    pub quorum: u8,
}

one_of!(ProbeForm, Probe, "a probe", {
    redis: PortOnly => |p: PortOnly| Probe::Redis { port: p.port },
    tcp: PortOnly => |p: PortOnly| Probe::Tcp { port: p.port },
    http: HttpForm => |h: HttpForm| Probe::Http { port: h.port, path: h.path },
});

one_of!(InitForm, InitStep, "an init step", {
    cluster_create: ClusterCreateForm => |c: ClusterCreateForm| InitStep::ClusterCreate { nodes: c.nodes, replicas: c.replicas },
    exec: ExecForm => |e: ExecForm| InitStep::Exec { service: e.service, command: e.command },
});

one_of!(VerifyForm, Verify, "verify", {
    sentinel: SentinelForm => |s: SentinelForm| Verify::Sentinel { port: s.port, quorum: s.quorum },
    cluster: PortOnly => |p: PortOnly| Verify::Cluster { port: p.port },
});
