//! Checks a drill against the topology it will run on: every node, group, role, setting,
//! profile and flavour it names must exist there. Errors point at the value in the drill file.

use super::locate::YamlPath;
use super::model::*;
use super::{closest, ScenarioError};
use crate::topology::{Role, ServicePlan, Topology};

/// Roles of nodes that hold data and answer clients.
fn is_data(role: Role) -> bool {
    matches!(role, Role::Master | Role::Replica | Role::ClusterNode)
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

struct Check<'a> {
    topo: &'a Topology,
    /// Problems found, with where they are.
    found: Vec<(YamlPath, String)>,
}

impl Check<'_> {
    fn fail(&mut self, at: YamlPath, message: String) {
        self.found.push((at, message));
    }

    fn name(&self) -> &str {
        &self.topo.name
    }

    fn node(&mut self, at: YamlPath, name: &str, need_data: Option<&str>) {
        let Some(svc) = self.topo.service(name) else {
            let names: Vec<&str> = self.topo.services.iter().map(|s| s.name.as_str()).collect();
            let msg = match closest(name, names.iter().copied()) {
                Some(near) => format!(
                    "topology {} has no node `{name}`; did you mean `{near}`?",
                    self.name()
                ),
                None => format!(
                    "topology {} has no node `{name}`; its nodes: {}",
                    self.name(),
                    names.join(", ")
                ),
            };
            return self.fail(at, msg);
        };
        if let Some(why) = need_data {
            if !is_data(svc.role) {
                let role = svc.role.to_string();
                let msg = format!(
                    "{name} is {} {role} node, and {why}; name a data node",
                    article(&role)
                );
                self.fail(at, msg);
            }
        }
    }

    fn members(&self, group: &str) -> Vec<&ServicePlan> {
        self.topo
            .services
            .iter()
            .filter(|s| s.group.as_deref() == Some(group) && is_data(s.role))
            .collect()
    }

    fn group(&mut self, at: YamlPath, group: &str) -> bool {
        let groups = self.topo.groups();
        if groups.iter().any(|g| g == group) {
            return true;
        }
        let msg = match closest(group, groups.iter().map(String::as_str)) {
            Some(near) => format!(
                "topology {} has no group `{group}`; did you mean `{near}`?",
                self.name()
            ),
            None if groups.is_empty() => format!(
                "topology {} has no groups; name a node instead",
                self.name()
            ),
            None => format!(
                "topology {} has no group `{group}`; its groups: {}",
                self.name(),
                groups.join(", ")
            ),
        };
        self.fail(at, msg);
        false
    }

    /// `need_data`: why the target must be a data node, if it must.
    fn target(&mut self, at: YamlPath, t: &Target, need_data: Option<&str>) {
        let at = at.key(t.key());
        match t {
            Target::Node(n) => self.node(at, n, need_data),
            Target::MasterOf(g) => {
                if self.group(at.clone(), g) && self.members(g).is_empty() {
                    self.fail(
                        at,
                        format!("group {g} has no data node, so it has no master"),
                    );
                }
            }
            Target::ReplicaOf(g) => {
                if self.group(at.clone(), g) && self.members(g).len() < 2 {
                    self.fail(
                        at,
                        format!("group {g} has a single data node, so it has no replica"),
                    );
                }
            }
            Target::AnyOf { role, .. } => {
                let at = at.key("role");
                if self.topo.with_role(*role).is_empty() {
                    let mut roles: Vec<String> = Vec::new();
                    for s in &self.topo.services {
                        let r = s.role.to_string();
                        if !roles.contains(&r) {
                            roles.push(r);
                        }
                    }
                    let msg = format!(
                        "topology {} has no {role} node; its roles: {}",
                        self.name(),
                        roles.join(", ")
                    );
                    self.fail(at, msg);
                } else if let Some(why) = need_data.filter(|_| !is_data(*role)) {
                    let role = role.to_string();
                    let msg = format!(
                        "{} {role} node holds no data, and {why}; pick master or replica",
                        article(&role)
                    );
                    self.fail(at, msg);
                }
            }
            Target::Sentinels { part, .. } => {
                let n = self.topo.with_role(Role::Sentinel).len();
                if let Some(why) = need_data {
                    self.fail(at, format!("Sentinels hold no data, and {why}"));
                } else if part.of(n) == 0 {
                    let msg = format!(
                        "topology {} has {n} Sentinel(s), so a {part} of them is nobody",
                        self.name()
                    );
                    self.fail(at, msg);
                }
            }
            Target::SentinelLeader(g) => {
                if let Some(why) = need_data {
                    self.fail(at, format!("a Sentinel holds no data, and {why}"));
                } else if self.topo.with_role(Role::Sentinel).is_empty() {
                    let msg = format!(
                        "topology {} has no Sentinels, so nobody leads a failover",
                        self.name()
                    );
                    self.fail(at, msg);
                } else {
                    self.group(at, g);
                }
            }
            Target::Zone(z) => {
                let mut zones: Vec<&str> = vec![];
                for s in &self.topo.services {
                    if let Some(z) = s.zone.as_deref() {
                        if !zones.contains(&z) {
                            zones.push(z);
                        }
                    }
                }
                if let Some(why) = need_data {
                    self.fail(
                        at,
                        format!("a zone can hold several nodes, and {why}; name one node"),
                    );
                } else if !zones.contains(&z.as_str()) {
                    let msg = if zones.is_empty() {
                        format!("topology {} gives no node a zone", self.name())
                    } else {
                        format!(
                            "topology {} has no zone `{z}`; its zones: {}",
                            self.name(),
                            zones.join(", ")
                        )
                    };
                    self.fail(at, msg);
                }
            }
        }
    }

    fn condition(&mut self, at: YamlPath, c: &Condition) {
        let at = at.key(c.key());
        match c {
            Condition::Promoted(g) => {
                self.group(at, g);
            }
            Condition::Role { node, .. } => self.node(
                at.key("node"),
                node,
                Some("only data nodes have a replication role"),
            ),
            Condition::LinkUp(node) => self.node(at, node, Some("only data nodes replicate")),
            Condition::Event(_) => {
                if self.topo.with_role(Role::Sentinel).is_empty() {
                    let msg = format!(
                        "topology {} has no Sentinel, so no Sentinel event will come; wait for `promoted` or `healthy` instead",
                        self.name()
                    );
                    self.fail(at, msg);
                }
            }
            Condition::Healthy | Condition::Elapsed(_) => {}
        }
    }
}

/// Checks that everything `s` names exists in `topo`. Of several problems, the first in the
/// file is reported.
pub fn validate(s: &Scenario, topo: &Topology) -> Result<(), ScenarioError> {
    let root = YamlPath::root();
    let mut c = Check {
        topo,
        found: Vec::new(),
    };
    let lab = &topo.lab;

    if let Some(p) = &s.profile {
        let mut profiles: Vec<&str> = lab
            .settings
            .values()
            .flat_map(|s| s.profiles.keys().map(String::as_str))
            .chain([lab.default_profile.as_str()])
            .collect();
        profiles.sort_unstable();
        profiles.dedup();
        if !profiles.contains(&p.as_str()) {
            let msg = format!(
                "topology {} has no profile `{p}`; its profiles: {}",
                topo.name,
                profiles.join(", ")
            );
            c.fail(root.key("profile"), msg);
        }
    }
    if let Some(f) = &s.flavor {
        if !lab.flavors.is_empty() && !lab.flavors.contains(f) {
            let msg = format!(
                "topology {} has no flavor `{f}`; choose one of: {}",
                topo.name,
                lab.flavors.join(", ")
            );
            c.fail(root.key("flavor"), msg);
        }
    }
    for name in s.set.keys() {
        if lab.settings.contains_key(name) {
            continue;
        }
        let names: Vec<&str> = lab.settings.keys().map(String::as_str).collect();
        let msg = if let Some((setting, _)) = lab.settings.iter().find(|(_, v)| &v.var == name) {
            format!("`{name}` is the variable behind setting `{setting}`; write the setting's name")
        } else if let Some(near) = closest(name, names.iter().copied()) {
            format!(
                "topology {} has no setting `{name}`; did you mean `{near}`?",
                topo.name
            )
        } else {
            format!(
                "topology {} has no setting `{name}`; settable: {}",
                topo.name,
                names.join(", ")
            )
        };
        c.fail(root.key("set").key_name(name.clone()), msg);
    }
    for (j, g) in s.workload.groups.iter().enumerate() {
        c.group(root.key("workload").key("groups").index(j), g);
    }
    for (i, p) in s.pinned_clients.iter().enumerate() {
        let at = root.key("pinned_clients").index(i).key("target");
        c.target(at, &p.target, Some("a pinned client writes to it"));
    }
    for (i, step) in s.steps.iter().enumerate() {
        let at = root.key("steps").index(i);
        match &step.action {
            Action::Fault(FaultSpec::Net { net, .. }) => {
                for (key, ix, t) in net.targets_at() {
                    let mut p = at.key("fault").key(net.key()).key(key);
                    if let Some((i, j)) = ix {
                        p = p.index(i).index(j);
                    }
                    c.target(p, t, None);
                }
            }
            Action::Fault(f) => {
                for t in f.targets() {
                    c.target(at.key("fault").key(f.key()).key("target"), t, None);
                }
            }
            Action::Wait { until, .. } => c.condition(at.key("wait").key("until"), until),
            Action::Heal(_) | Action::Note(_) => {}
        }
    }

    c.found
        .into_iter()
        .map(|(at, msg)| s.source.error(&at, msg))
        .min_by_key(|e| e.position())
        .map_or(Ok(()), Err)
}
