//! What fault mechanisms this host supports, found by trying them in throwaway places
//! (never assumed): the freezer for pause, iptables reachable in a container's network
//! namespace (and `ss` for lab's proxy), the `sch_netem` qdisc for `tc netem`, and a block I/O
//! throttle for slow disks.

use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Capability {
    pub name: &'static str,
    pub supported: bool,
    pub how: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HostCapabilities {
    pub pause: Capability,
    pub iptables: Capability,
    pub proxy: Capability,
    pub netem: Capability,
    pub network_disconnect: Capability,
    pub slow_disk: Capability,
}

impl HostCapabilities {
    pub fn all(&self) -> [&Capability; 6] {
        [
            &self.pause,
            &self.iptables,
            &self.proxy,
            &self.netem,
            &self.network_disconnect,
            &self.slow_disk,
        ]
    }
}

fn which(bin: &str) -> Option<String> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Probes the host. `rootless` comes from the engine: a rootless engine's namespaces are
/// not enterable from the host without the engine's help.
pub fn host_capabilities(rootless: bool) -> HostCapabilities {
    let freezer_v1 = Path::new("/sys/fs/cgroup/freezer").exists();
    let cgroup_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        || Path::new("/sys/fs/cgroup/unified").exists();
    let pause = Capability {
        name: "pause",
        supported: freezer_v1 || cgroup_v2,
        how: if freezer_v1 {
            "cgroup v1 freezer".into()
        } else if cgroup_v2 {
            "cgroup v2 freeze".into()
        } else {
            "no cgroup freezer found".into()
        },
    };

    let root = is_root();
    let iptables = match (which("nsenter"), which("iptables")) {
        (Some(_), Some(_)) if root && !rootless => Capability {
            name: "iptables",
            supported: true,
            how: "iptables inside the container's network namespace, entered from the host with nsenter".into(),
        },
        (Some(_), Some(_)) => Capability {
            name: "iptables",
            supported: false,
            how: "needs root and a rootful engine to enter container network namespaces".into(),
        },
        _ => Capability {
            name: "iptables",
            supported: false,
            how: "nsenter or iptables is not installed on the host".into(),
        },
    };

    // The proxy's DNAT is an iptables rule; `ss -K` closes the connections it takes over and,
    // on heal, those it held (without it a node can sit on a connection to a proxy that is gone).
    let proxy = match (iptables.supported, which("ss")) {
        (true, Some(_)) => Capability {
            name: "proxy",
            supported: true,
            how: "lab's TCP proxy, reached by DNAT in the sender's namespace; ss -K closes the connections it takes over and those it held".into(),
        },
        (true, None) => Capability {
            name: "proxy",
            supported: false,
            how: "ss (iproute2) is not installed on the host: the proxy needs it to close the connections it takes over and, on heal, those it held".into(),
        },
        (false, _) => Capability {
            name: "proxy",
            supported: false,
            how: format!("needs iptables for its DNAT rule: {}", iptables.how),
        },
    };

    let netem = probe_netem(root);
    let (disk_ok, disk_how) = crate::fault::disk::host_support();

    HostCapabilities {
        pause,
        iptables,
        proxy,
        netem,
        network_disconnect: Capability {
            name: "network-disconnect",
            supported: true,
            how: "engine API (disconnect/connect a container from its network)".into(),
        },
        slow_disk: Capability {
            name: "slow-disk",
            supported: disk_ok && root,
            how: if root {
                disk_how
            } else {
                "needs root to write the containers' cgroup files".into()
            },
        },
    }
}

fn probe_netem(root: bool) -> Capability {
    if which("tc").is_none() {
        return Capability {
            name: "netem",
            supported: false,
            how: "`tc` (iproute2) is not installed; lab will use its userspace proxy for latency/loss".into(),
        };
    }
    if !root || which("unshare").is_none() {
        return Capability {
            name: "netem",
            supported: false,
            how: "cannot test sch_netem without root; lab will use its userspace proxy".into(),
        };
    }
    // Try the qdisc on the loopback of a fresh, empty network namespace: nothing real is touched.
    let out = Command::new("unshare")
        .args([
            "-n", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => Capability {
            name: "netem",
            supported: true,
            how: "kernel has sch_netem (tested in a throwaway network namespace)".into(),
        },
        Ok(o) => Capability {
            name: "netem",
            supported: false,
            how: format!(
                "kernel refused the netem qdisc ({}); lab will use its userspace proxy",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        },
        Err(e) => Capability {
            name: "netem",
            supported: false,
            how: format!("could not run tc: {e}"),
        },
    }
}
