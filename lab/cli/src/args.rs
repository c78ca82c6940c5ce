//! Command-line arguments. Precedence for every knob: flag > environment > file > default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "lab",
    version,
    about = "Real cluster topologies on one machine: bring them up in Docker or Podman, drive load, break them, measure what users feel.",
    after_help = "Examples:\n  lab up redis-sentinel            # 3 groups + 3 Sentinels, verified\n  lab status redis-sentinel\n  lab down redis-sentinel --volumes\n  lab images build                 # offline images from Debian packages\n  lab doctor                       # engine, fault mechanisms, images"
)]
pub struct Cli {
    /// Engine: `docker`, `podman`, or a socket path (env LAB_ENGINE). Default: DOCKER_HOST,
    /// CONTAINER_HOST, /var/run/docker.sock, /run/podman/podman.sock, $XDG_RUNTIME_DIR/podman/podman.sock.
    #[arg(long, global = true, env = "LAB_ENGINE")]
    pub engine: Option<String>,

    /// Project directory holding compose/, configs/, scenarios/ (env LAB_HOME; default: nearest
    /// ancestor of the working directory with a compose/ folder).
    #[arg(long, global = true, env = "LAB_HOME")]
    pub home: Option<PathBuf>,

    /// Without a command: `lab tui redis-sentinel` (a live screen on a terminal, plain
    /// progress lines otherwise).
    #[command(subcommand)]
    pub command: Option<Command>,
}

// Parsed once per run: the size of the largest variant (`lab fault`'s flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring a topology up (or resume it), wait for real readiness, check its success criteria.
    Up(UpArgs),
    /// Show each node: role (live), group, state, health, replication link, host port.
    Status(InstanceArgs),
    /// Print a node's container logs.
    Logs(LogsArgs),
    /// Remove exactly what this instance created (containers, networks; volumes with --volumes).
    Down(DownArgs),
    /// Engine, version, rootless or not, fault mechanisms this host supports, images present.
    Doctor(DoctorArgs),
    /// Offline images built from Debian packages.
    #[command(subcommand)]
    Images(ImagesCmd),
    /// List the shipped topologies.
    Topologies,
    /// Benchmarks against a running topology, with the peer tool measured in the same run.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Run a drill file: bring its topology up if needed, drive load, inject its faults,
    /// measure, write the reports; exit 1 if an assertion fails.
    Drill(DrillArgs),
    /// Work with run reports.
    #[command(subcommand)]
    Report(ReportCmd),
    /// Inject a fault by hand into a running topology (journalled; `lab heal` undoes it).
    Fault(Box<FaultArgs>),
    /// Undo faults still applied (all of them, or one by id), including those a killed lab left.
    Heal(HealArgs),
    /// Live screen: attach to a topology (or bring it up), drive load, break nodes with a
    /// key and watch the failover measured. Without a terminal: plain progress lines.
    Tui(TuiArgs),
}

#[derive(Debug, Args, Default)]
pub struct TuiArgs {
    /// Topology name (a file in compose/) or path to a compose file.
    #[arg(default_value = "redis-sentinel")]
    pub topology: String,
    /// Instance name (default: the topology's name).
    #[arg(long)]
    pub name: Option<String>,
    /// First host port, when the topology is brought up here.
    #[arg(long)]
    pub port_base: Option<u16>,
    /// Timer profile when the topology is brought up here (drill or seed).
    #[arg(long, env = "LAB_PROFILE")]
    pub profile: Option<String>,
    /// Which images: upstream, offline, auto.
    #[arg(long, env = "LAB_IMAGES", default_value = "auto")]
    pub images: String,
    /// Target load in operations per second over all groups (open loop).
    #[arg(long, default_value_t = 600)]
    pub rate: u32,
    /// Client connections over all groups.
    #[arg(long, default_value_t = 6)]
    pub clients: u32,
    /// Start without load (`w` starts it).
    #[arg(long)]
    pub no_load: bool,
    /// Where reports of the session go (R saves one; one is written at the end if a fault
    /// was injected).
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    pub plain: bool,
    /// Plain mode: end the session after this long (e.g. 60s); default: at Ctrl-C.
    #[arg(long = "for")]
    pub duration: Option<String>,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Drill file, e.g. scenarios/redis-sentinel-master-kill.yaml.
    pub file: PathBuf,
    /// Where the reports go (JSON, Markdown, SVG, JUnit).
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,
    /// Instance name (default: the topology's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Which images: upstream, offline, auto.
    #[arg(long, env = "LAB_IMAGES", default_value = "auto")]
    pub images: String,
    /// Only check the file against its topology; start nothing.
    #[arg(long)]
    pub check: bool,
    /// First host port, when the drill brings the topology up (default: the file's ports,
    /// shifted by 1000 until free).
    #[arg(long)]
    pub port_base: Option<u16>,
    /// How long to wait after the timeline for the topology to heal before reading writes back.
    #[arg(long, default_value = "60s")]
    pub settle: String,
    /// Print the report as JSON on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// Two runs side by side (figures, per-fault metrics, assertions).
    Compare { a: PathBuf, b: PathBuf },
    /// Print a report's Markdown summary.
    Show { file: PathBuf },
}

#[derive(Debug, Args)]
pub struct FaultArgs {
    /// kill, stop, restart, restart-loop, pause, leader-crash (the target's Sentinels crash
    /// when elected failover leader, e.g. `sentinels:all`); resource: stress, disk-full,
    /// clock-skew, slow-disk; network: isolate, partition, one-way, cut-clients, loss,
    /// latency, timeout, reset.
    pub kind: String,
    /// A node name (redis-1), or `master-of:<group>`, `replica-of:<group>`, `any:<role>[:seed]`,
    /// `sentinels:minority|majority|all[:seed]`, `sentinel-leader:<group>` (the Sentinel failing
    /// the group over now) or `zone:<label>`, resolved live. For
    /// `partition`, a comma-separated side (`redis-1,sentinel-1`); nodes in no side form one
    /// more side.
    pub target: String,
    /// one-way: the node the target can no longer reach; latency, timeout, reset: the far
    /// end of the link (latency without it: every link of the target, both ways).
    #[arg(long)]
    pub to: Option<String>,
    /// timeout: close each silenced connection this long after it opened (e.g. 5s); without
    /// it they stay open, passing nothing, until heal.
    #[arg(long)]
    pub close_after: Option<String>,
    /// reset: reset connections this long after they open (e.g. 2s; default at once).
    #[arg(long)]
    pub after: Option<String>,
    /// restart-loop: the period, from one restart to the next (at least 1s, e.g. 5s).
    #[arg(long)]
    pub every: Option<String>,
    /// leader-crash: how long the Sentinels stay armed waiting for an election (default 60s).
    #[arg(long)]
    pub within: Option<String>,
    /// partition: another side (comma-separated nodes); repeatable.
    #[arg(long)]
    pub side: Vec<String>,
    /// loss: share of the target's outgoing packets dropped, 1-100.
    #[arg(long)]
    pub percent: Option<u8>,
    /// latency: added to each direction (e.g. 100ms).
    #[arg(long)]
    pub delay: Option<String>,
    /// latency: +/- this much per chunk, order kept (e.g. 20ms).
    #[arg(long)]
    pub jitter: Option<String>,
    /// latency: cap each direction at this many kilobits per second.
    #[arg(long)]
    pub bandwidth_kbit: Option<u32>,
    /// Topology (or instance) the node belongs to.
    #[arg(long, short = 't')]
    pub topology: String,
    #[arg(long)]
    pub name: Option<String>,
    /// Heal it after this long (e.g. 10s); without it, the fault stays until `lab heal`.
    #[arg(long = "for")]
    pub duration: Option<String>,
    /// Signal for kill.
    #[arg(long, default_value = "SIGKILL")]
    pub signal: String,
    /// stress: busy CPU workers (default 1, or 0 when --memory is given).
    #[arg(long)]
    pub cpu: Option<u32>,
    /// stress: memory to hold, e.g. 128m.
    #[arg(long)]
    pub memory: Option<String>,
    /// disk-full: bytes to leave free, e.g. 1m (default 0).
    #[arg(long)]
    pub leave: Option<String>,
    /// clock-skew: how far to move the clock, e.g. +90s or -2m.
    #[arg(long, allow_hyphen_values = true)]
    pub offset: Option<String>,
    /// slow-disk: cap the node's writes to its data directory's disk, bytes per second (1m).
    #[arg(long)]
    pub write_bps: Option<String>,
    /// slow-disk: cap its reads, bytes per second.
    #[arg(long)]
    pub read_bps: Option<String>,
    /// slow-disk: cap its read and write operations per second each.
    #[arg(long)]
    pub iops: Option<u64>,
}

#[derive(Debug, Args)]
pub struct HealArgs {
    /// Topology (or instance) name.
    pub topology: String,
    /// Only this fault (an id shown by `lab fault` or `lab heal --list`).
    pub fault: Option<String>,
    #[arg(long)]
    pub name: Option<String>,
    /// List faults in force without healing.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// The seed's redis-benchmark (-c 50 -n 100000 -t get,set, plus pipelined), by lab's
    /// generator and by redis-benchmark/valkey-benchmark when installed; prints the ratios.
    Redis {
        /// Topology (or instance) to benchmark; it must be up.
        topology: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value_t = 50)]
        clients: u32,
        #[arg(long, default_value_t = 100_000)]
        requests: u64,
        /// Pipeline depths, comma-separated.
        #[arg(long, default_value = "1,16", value_delimiter = ',')]
        pipeline: Vec<u32>,
        /// Value size in bytes (redis-benchmark's -d).
        #[arg(long, default_value_t = 3)]
        value_size: usize,
        /// Skip the peer tool.
        #[arg(long)]
        no_peer: bool,
        /// Measured rounds per case (lab and the peer back to back, alternating order).
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// How both tools reach the servers: the containers' own addresses (direct, as
        /// redis-benchmark --cluster does), the published 127.0.0.1 ports, or direct where
        /// those addresses route (auto).
        #[arg(long, default_value = "auto")]
        path: lab_core::bench::Path,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct InstanceArgs {
    /// Topology name (a file in compose/) or path to a compose file.
    pub topology: String,
    /// Instance name (default: the topology's name); lets two instances run side by side.
    #[arg(long)]
    pub name: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub inst: InstanceArgs,
    /// Timer profile: `drill` (fast, for workshops) or `seed` (the seed document's values).
    #[arg(long, env = "LAB_PROFILE")]
    pub profile: Option<String>,
    /// Server flavour: valkey or redis.
    #[arg(long, env = "LAB_FLAVOR")]
    pub flavor: Option<String>,
    /// Override a setting for this run, e.g. --set down-after-milliseconds=5000 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Which images: upstream (registry), offline (built by `lab images build`), auto.
    #[arg(long, env = "LAB_IMAGES", default_value = "auto")]
    pub images: String,
    /// First host port of this instance (default: the file's ports, shifted by 1000 until free).
    #[arg(long)]
    pub port_base: Option<u16>,
    /// Give up if the topology is not ready and verified within this time.
    #[arg(long, default_value = "180s")]
    pub timeout: String,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Node (service) name, e.g. redis-1.
    pub node: String,
    /// Instance holding the node (needed only when several instances have it).
    #[arg(long)]
    pub name: Option<String>,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<usize>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Topology (or instance) name.
    pub topology: String,
    /// Instance name (default: the topology's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Also remove the instance's volumes (its data) and password.
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCmd {
    /// Build offline images (all when none named); unchanged recipes are skipped.
    Build {
        /// Image or recipe names, e.g. valkey redis-exporter.
        names: Vec<String>,
        /// Rebuild even when up to date.
        #[arg(long)]
        force: bool,
    },
    /// List lab's offline images and whether they are present.
    List,
}
