//! The drill file as written: strict serde forms (an unknown key is an error), and the checks
//! that turn them into a [`Scenario`]. Errors found while reading carry the YAML parser's own
//! position; errors found after reading are placed with [`super::locate`].

use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::assertion::{self, Assertion, Metric};
use super::locate::{locate_in_scalar, YamlPath};
use super::model::*;
use super::net::{NetSpec, Via};
use super::resource::{ClockSkewForm, DiskFullForm, SentinelsForm, SlowDiskForm, StressForm};
use super::{closest, ScenarioError};
use crate::measure::SentinelEvent;
use crate::topology::Role;

pub(crate) const DEFAULT_WARMUP: Duration = Duration::from_secs(3);
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------ scalars

/// A duration written with its unit (`500ms`, `5s`, `1m30s`). A bare number is an error:
/// seconds or milliseconds is exactly the mix-up a drill file must not allow.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dur(pub(super) Duration);

pub(super) fn parse_dur(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if !t.is_empty() && t.parse::<f64>().is_ok() {
        return Err(format!("`{t}` has no unit; write {t}s or {t}ms"));
    }
    super::duration(t)
        .ok_or_else(|| format!("`{s}` is not a duration; write it like 500ms, 5s or 1m30s"))
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration like 500ms, 5s or 1m30s")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                parse_dur(s).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Dur, E> {
                Err(E::custom(format!("`{n}` has no unit; write {n}s or {n}ms")))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "`{n}` is not a duration; write it like 500ms or 5s"
                )))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Dur, E> {
                Err(E::custom(format!("`{n}` has no unit; write {n}s")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A setting value: text or a number, kept as the text `--set` would pass.
#[derive(Debug, Clone)]
struct SettingValue(String);

impl<'de> Deserialize<'de> for SettingValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SettingValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a setting value (text or a number)")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SettingValue, E> {
                Ok(SettingValue(s.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<SettingValue, E> {
                Ok(SettingValue(n.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<SettingValue, E> {
                Ok(SettingValue(n.to_string()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<SettingValue, E> {
                Ok(SettingValue(n.to_string()))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<SettingValue, E> {
                Err(E::custom(format!(
                    "`{b}` is a boolean; a setting value is text or a number, so quote it: \"{}\"",
                    if b { "yes" } else { "no" }
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads a string and converts it inside the visit, so that a conversion error carries the
/// string's own line and column.
fn from_str_with<'de, D, T>(
    d: D,
    expecting: &'static str,
    convert: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<F>(F, &'static str);
    impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.1)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            (self.0)(s).map_err(E::custom)
        }
    }
    d.deserialize_str(V(convert, expecting))
}

/// Sentinel's pub/sub event names (Redis and Valkey documentation).
const SENTINEL_EVENTS: &[&str] = &[
    "+reset-master",
    "+slave",
    "+failover-state-reconf-slaves",
    "+failover-detected",
    "+slave-reconf-sent",
    "+slave-reconf-inprog",
    "+slave-reconf-done",
    "-dup-sentinel",
    "+sentinel",
    "+sdown",
    "-sdown",
    "+odown",
    "-odown",
    "+new-epoch",
    "+try-failover",
    "+vote-for-leader",
    "+elected-leader",
    "+failover-state-select-slave",
    "-failover-abort-no-good-slave",
    "-failover-abort-not-elected",
    "+selected-slave",
    "+failover-state-send-slaveof-noone",
    "+failover-state-wait-promotion",
    "+promoted-slave",
    "+failover-end-for-timeout",
    "+failover-end",
    "+switch-master",
    "+convert-to-slave",
    "+fix-slave-config",
    "+config-update-from",
    "-slave-restart-as-master",
    "+tilt",
    "-tilt",
];

/// A Sentinel event name that Sentinel actually publishes.
struct EventName(SentinelEvent);

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "a Sentinel event name, like +switch-master", |s| {
            if SENTINEL_EVENTS.contains(&s) {
                return Ok(EventName(SentinelEvent::parse(s)));
            }
            Err(match closest(s, SENTINEL_EVENTS.iter().copied()) {
                Some(near) => format!("`{s}` is not a Sentinel event; did you mean `{near}`?"),
                None => format!(
                    "`{s}` is not a Sentinel event; write one like +switch-master or +sdown (the list is in docs/drills.md)"
                ),
            })
        })
    }
}

const SIGNALS: &[&str] = &[
    "SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGABRT", "SIGSEGV", "SIGUSR1", "SIGUSR2",
];

/// A signal name, stored as `SIGxxx`.
struct Signal(String);

impl Default for Signal {
    fn default() -> Self {
        Signal("SIGKILL".into())
    }
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "a signal name, like SIGKILL", |s| {
            let up = s.trim().to_ascii_uppercase();
            let name = if up.starts_with("SIG") {
                up
            } else {
                format!("SIG{up}")
            };
            if SIGNALS.contains(&name.as_str()) {
                Ok(Signal(name))
            } else {
                Err(format!(
                    "`{s}` is not a signal lab sends; use one of {}",
                    SIGNALS.join(", ")
                ))
            }
        })
    }
}

// ------------------------------------------------------------------ one-key maps

/// `a, b or c`.
fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn one_of_expecting(words: &[&str], keys: &[&str]) -> String {
    let map = format!("a map with one key: {}", or_list(keys));
    if words.is_empty() {
        map
    } else {
        let w: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        format!("{}, or {map}", or_list(&w))
    }
}

// serde_norway reads externally tagged enums only from YAML `!tags`; drill files say
// `{kill: {target: ...}}`. This reads such a map strictly (one key, from a known set) and, for
// variants without data, a plain word (`heal: all`). The conversion runs inside the map's
// visit, so its errors carry the map's own line and column.
macro_rules! one_of {
    (
        $target:ty, $form:ident, $what:literal,
        words: { $($word:literal => $wval:expr),* $(,)? },
        keys: { $($key:ident : $ty:ty => $conv:expr),+ $(,)? } $(,)?
    ) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $form {
            $( #[serde(default)] $key: Option<$ty>, )+
        }

        impl<'de> Deserialize<'de> for $target {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                const WORDS: &[&str] = &[$($word),*];
                const KEYS: &[&str] = &[$(stringify!($key)),+];
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $target;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str(&one_of_expecting(WORDS, KEYS))
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$target, E> {
                        $( if s == $word { return Ok($wval); } )*
                        Err(E::custom(format!(
                            "unknown {} `{s}`; write {}",
                            $what,
                            one_of_expecting(WORDS, KEYS)
                        )))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<$target, A::Error> {
                        let form = $form::deserialize(de::value::MapAccessDeserializer::new(map))?;
                        let mut found: Vec<(&str, $target)> = Vec::new();
                        $( if let Some(v) = form.$key {
                            found.push((stringify!($key), ($conv)(v)));
                        } )+
                        match found.len() {
                            1 => Ok(found.remove(0).1),
                            0 => Err(de::Error::custom(format!(
                                "a {} needs one key: {}",
                                $what,
                                or_list(KEYS)
                            ))),
                            _ => {
                                let names: Vec<&str> = found.iter().map(|(k, _)| *k).collect();
                                Err(de::Error::custom(format!(
                                    "a {} takes one key of {}, and this one has {}",
                                    $what,
                                    or_list(KEYS),
                                    names.join(" and ")
                                )))
                            }
                        }
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KillForm {
    target: Target,
    #[serde(default)]
    signal: Signal,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StopForm {
    target: Target,
    #[serde(default)]
    grace: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetForm {
    target: Target,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartLoopForm {
    target: Target,
    every: Period,
    #[serde(default, rename = "for")]
    lasts: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaderCrashForm {
    target: Target,
    #[serde(default)]
    within: Option<Dur>,
}

/// How long `leader_crash` keeps the Sentinels armed when no `within` is given.
pub const DEFAULT_LEADER_CRASH_WITHIN: Duration = Duration::from_secs(60);

/// A restart loop's period: a duration of at least a second (a restart itself takes about
/// that long, so a shorter period is a container that never runs).
struct Period(Duration);

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Dur(p) = Dur::deserialize(d)?;
        if p < Duration::from_secs(1) {
            return Err(de::Error::custom(format!(
                "every `{}` is too short; a restart loop's period is at least 1s",
                super::fmt::dur(p)
            )));
        }
        Ok(Period(p))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseForm {
    target: Target,
    #[serde(default, rename = "for")]
    lasts: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnyOfForm {
    role: Role,
    #[serde(default)]
    seed: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleForm {
    node: String,
    is: NodeRole,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetTargetForm {
    target: Target,
    #[serde(default, rename = "for")]
    lasts: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionForm {
    sides: Vec<Vec<Target>>,
    #[serde(default, rename = "for")]
    lasts: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OneWayForm {
    from: Target,
    to: Target,
    #[serde(default, rename = "for")]
    lasts: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LossForm {
    target: Target,
    percent: Percent,
    #[serde(default, rename = "for")]
    lasts: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyForm {
    from: Target,
    to: Target,
    delay: Dur,
    #[serde(default)]
    jitter: Option<Dur>,
    #[serde(default)]
    bandwidth_kbit: Option<u32>,
    #[serde(default)]
    via: Via,
    #[serde(default, rename = "for")]
    lasts: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeLatencyForm {
    target: Target,
    delay: Dur,
    #[serde(default)]
    jitter: Option<Dur>,
    #[serde(default)]
    bandwidth_kbit: Option<u32>,
    #[serde(default)]
    via: Via,
    #[serde(default, rename = "for")]
    lasts: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutForm {
    from: Target,
    to: Target,
    #[serde(default)]
    close_after: Option<Dur>,
    #[serde(default, rename = "for")]
    lasts: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetForm {
    from: Target,
    to: Target,
    #[serde(default)]
    after: Option<Dur>,
    #[serde(default, rename = "for")]
    lasts: Option<Dur>,
}

/// A whole percentage, 1 to 100.
struct Percent(u8);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        match u8::try_from(v) {
            Ok(p) if (1..=100).contains(&p) => Ok(Percent(p)),
            _ => Err(de::Error::custom(format!(
                "percent must be a whole number from 1 to 100, not {v}"
            ))),
        }
    }
}

fn net(net: NetSpec, lasts: Option<Dur>) -> FaultSpec {
    FaultSpec::Net {
        net,
        duration: lasts.map(|d| d.0),
    }
}

one_of!(FaultSpec, FaultForm, "fault",
    words: {},
    keys: {
        kill: KillForm => |k: KillForm| FaultSpec::Kill { target: k.target, signal: k.signal.0 },
        stop: StopForm => |s: StopForm| FaultSpec::Stop {
            target: s.target,
            grace: s.grace.map_or(DEFAULT_GRACE, |d| d.0),
        },
        restart: TargetForm => |t: TargetForm| FaultSpec::Restart { target: t.target },
        restart_loop: RestartLoopForm => |f: RestartLoopForm| FaultSpec::RestartLoop {
            target: f.target,
            every: f.every.0,
            duration: f.lasts.map(|d| d.0),
        },
        pause: PauseForm => |p: PauseForm| FaultSpec::Pause {
            target: p.target,
            duration: p.lasts.map(|d| d.0),
        },
        isolate: NetTargetForm => |f: NetTargetForm| net(NetSpec::Isolate { target: f.target }, f.lasts),
        partition: PartitionForm => |f: PartitionForm| net(NetSpec::Partition { sides: f.sides }, f.lasts),
        one_way: OneWayForm => |f: OneWayForm| net(NetSpec::OneWay { from: f.from, to: f.to }, f.lasts),
        cut_clients: NetTargetForm => |f: NetTargetForm| net(NetSpec::CutClients { target: f.target }, f.lasts),
        loss: LossForm => |f: LossForm| net(NetSpec::Loss { target: f.target, percent: f.percent.0 }, f.lasts),
        latency: LatencyForm => |f: LatencyForm| net(NetSpec::Latency {
            from: f.from,
            to: f.to,
            delay: f.delay.0,
            jitter: f.jitter.map_or(Duration::ZERO, |d| d.0),
            bandwidth_kbit: f.bandwidth_kbit,
            via: f.via,
        }, f.lasts),
        node_latency: NodeLatencyForm => |f: NodeLatencyForm| net(NetSpec::NodeLatency {
            target: f.target,
            delay: f.delay.0,
            jitter: f.jitter.map_or(Duration::ZERO, |d| d.0),
            bandwidth_kbit: f.bandwidth_kbit,
            via: f.via,
        }, f.lasts),
        timeout: TimeoutForm => |f: TimeoutForm| net(NetSpec::Timeout {
            from: f.from,
            to: f.to,
            close_after: f.close_after.map(|d| d.0),
        }, f.lasts),
        reset: ResetForm => |f: ResetForm| net(NetSpec::Reset {
            from: f.from,
            to: f.to,
            after: f.after.map_or(Duration::ZERO, |d| d.0),
        }, f.lasts),
        stress: StressForm => |f: StressForm| FaultSpec::Resource(f.into()),
        disk_full: DiskFullForm => |f: DiskFullForm| FaultSpec::Resource(f.into()),
        clock_skew: ClockSkewForm => |f: ClockSkewForm| FaultSpec::Resource(f.into()),
        slow_disk: SlowDiskForm => |f: SlowDiskForm| FaultSpec::Resource(f.0),
        leader_crash: LeaderCrashForm => |f: LeaderCrashForm| FaultSpec::LeaderCrash {
            target: f.target,
            within: f.within.map_or(DEFAULT_LEADER_CRASH_WITHIN, |d| d.0),
        },
    },
);

one_of!(Target, TargetOneOf, "target",
    words: {},
    keys: {
        node: String => Target::Node,
        master_of: String => Target::MasterOf,
        replica_of: String => Target::ReplicaOf,
        any_of: AnyOfForm => |a: AnyOfForm| Target::AnyOf { role: a.role, seed: a.seed },
        sentinels: SentinelsForm => |s: SentinelsForm| Target::Sentinels { part: s.part, seed: s.seed },
        zone: String => Target::Zone,
        sentinel_leader: String => Target::SentinelLeader,
    },
);

one_of!(HealSpec, HealForm, "heal",
    words: { "all" => HealSpec::All },
    keys: { fault: u32 => HealSpec::Fault },
);

one_of!(Condition, ConditionForm, "wait condition",
    words: { "healthy" => Condition::Healthy },
    keys: {
        promoted: String => Condition::Promoted,
        role: RoleForm => |r: RoleForm| Condition::Role { node: r.node, is: r.is },
        link_up: String => Condition::LinkUp,
        event: EventName => |e: EventName| Condition::Event(e.0),
        elapsed: Dur => |d: Dur| Condition::Elapsed(d.0),
    },
);

// ------------------------------------------------------------------ the file

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    description: String,
    topology: String,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    flavor: Option<String>,
    #[serde(default)]
    set: IndexMap<String, SettingValue>,
    #[serde(default)]
    workload: Option<WorkloadForm>,
    #[serde(default)]
    pinned_clients: Vec<PinnedForm>,
    #[serde(default)]
    warmup: Option<Dur>,
    #[serde(default)]
    timeout: Option<Dur>,
    steps: Vec<StepForm>,
    #[serde(default)]
    assertions: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ModeName {
    Open,
    Closed,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadForm {
    #[serde(default)]
    mode: Option<ModeName>,
    #[serde(default)]
    rate: Option<u32>,
    #[serde(default)]
    clients: Option<u32>,
    #[serde(default)]
    pipeline: Option<u32>,
    #[serde(default)]
    keyspace: Option<u64>,
    #[serde(default)]
    value_size: Option<u32>,
    #[serde(default)]
    read_ratio: Option<f64>,
    #[serde(default)]
    track_writes: Option<bool>,
    #[serde(default)]
    op_timeout: Option<Dur>,
    #[serde(default)]
    groups: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinnedForm {
    name: String,
    target: Target,
    rate: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepForm {
    #[serde(default)]
    at: Option<Dur>,
    #[serde(default)]
    after: Option<Dur>,
    #[serde(default)]
    fault: Option<FaultSpec>,
    #[serde(default)]
    heal: Option<HealSpec>,
    #[serde(default)]
    wait: Option<WaitForm>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitForm {
    until: Condition,
    #[serde(default)]
    timeout: Option<Dur>,
}

/// Turns a YAML error into "file:line:col: message", with a suggestion for a misspelt key.
fn yaml_error(src: &SourceText, e: serde_norway::Error) -> ScenarioError {
    let pos = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let mut message = e.to_string();
    if let Some(idx) = message.find(" at line ") {
        message.truncate(idx);
    }
    if message.contains("unknown field") || message.contains("unknown variant") {
        let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
        if let Some((wrong, known)) = quoted.split_first() {
            if let Some(near) = closest(wrong, known.iter().copied()) {
                message = format!("{message}; did you mean `{near}`?");
            }
        }
    }
    src.error_at(pos, message)
}

/// Reads a drill from its text; `file` is the name used in messages.
pub(crate) fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let src = SourceText {
        file: file.to_string(),
        text: text.to_string(),
    };
    let blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if blank {
        return Err(src.error_at(
            (1, 1),
            "the drill file is empty; start from one of the drills in scenarios/ (see docs/drills.md)",
        ));
    }
    let form: FileForm = serde_norway::from_str(text).map_err(|e| yaml_error(&src, e))?;
    build(src, form)
}

fn build(src: SourceText, form: FileForm) -> Result<Scenario, ScenarioError> {
    let root = YamlPath::root();
    if form.description.trim().is_empty() {
        return Err(src.error(
            &root.key("description"),
            "the description is empty; say in a sentence what the drill does and measures",
        ));
    }
    if form.topology.trim().is_empty() {
        return Err(src.error(
            &root.key("topology"),
            "the topology is empty; name one in compose/, like redis-sentinel",
        ));
    }
    let timeout = form.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
    if timeout.is_zero() {
        return Err(src.error(
            &root.key("timeout"),
            "the drill's timeout must be longer than 0; it bounds the whole timeline, like 120s",
        ));
    }
    let workload = workload(&src, form.workload.unwrap_or_default())?;
    let pinned_clients = pinned(&src, form.pinned_clients)?;
    let steps = steps(&src, form.steps, timeout)?;
    let fault_count = steps
        .iter()
        .filter(|s| matches!(s.action, Action::Fault(_)))
        .count() as u32;
    let assertions = form
        .assertions
        .into_iter()
        .enumerate()
        .map(|(i, text)| assertion(&src, i, text, fault_count, &workload))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Scenario {
        description: form.description,
        topology: form.topology,
        profile: form.profile,
        flavor: form.flavor,
        set: form.set.into_iter().map(|(k, v)| (k, v.0)).collect(),
        workload,
        pinned_clients,
        warmup: form.warmup.map_or(DEFAULT_WARMUP, |d| d.0),
        timeout,
        steps,
        assertions,
        source: src,
    })
}

fn workload(src: &SourceText, w: WorkloadForm) -> Result<WorkloadSpec, ScenarioError> {
    let at = |key: &str| YamlPath::root().key("workload").key(key);
    let d = WorkloadSpec::default();
    let mode = match (w.mode.unwrap_or(ModeName::Closed), w.rate) {
        (ModeName::Open, Some(0)) => {
            return Err(src.error(&at("rate"), "rate must be at least 1 operation per second"))
        }
        (ModeName::Open, Some(rate)) => LoadMode::Open { rate },
        (ModeName::Open, None) => {
            return Err(src.error(
                &at("mode"),
                "an open-loop workload sends at a fixed pace; add `rate:` (operations per second, like 2000)",
            ))
        }
        (ModeName::Closed, None) => LoadMode::Closed,
        (ModeName::Closed, Some(_)) => {
            return Err(src.error(
                &at("rate"),
                "`rate` sets the pace of an open-loop workload; add `mode: open` or remove `rate`",
            ))
        }
    };
    let at_least_one = |key: &str, v: Option<u64>| -> Result<(), ScenarioError> {
        match v {
            Some(0) => Err(src.error(&at(key), format!("{key} must be at least 1"))),
            _ => Ok(()),
        }
    };
    at_least_one("clients", w.clients.map(u64::from))?;
    at_least_one("pipeline", w.pipeline.map(u64::from))?;
    at_least_one("keyspace", w.keyspace)?;
    at_least_one("value_size", w.value_size.map(u64::from))?;
    if let Some(r) = w.read_ratio {
        if !(0.0..=1.0).contains(&r) {
            return Err(src.error(
                &at("read_ratio"),
                format!(
                    "read_ratio is the share of reads, from 0 to 1 (0.5 is half reads), not {r}"
                ),
            ));
        }
    }
    let op_timeout = w.op_timeout.map_or(d.op_timeout, |t| t.0);
    if op_timeout.is_zero() {
        return Err(src.error(
            &at("op_timeout"),
            "op_timeout must be longer than 0, like 1s",
        ));
    }
    if matches!(w.groups.as_deref(), Some([])) {
        return Err(src.error(
            &at("groups"),
            "`groups: []` gives no group any load; remove it to load every group",
        ));
    }
    let groups = w.groups.unwrap_or_default();
    for (j, g) in groups.iter().enumerate() {
        if groups[..j].contains(g) {
            return Err(src.error(&at("groups").index(j), format!("group {g} is listed twice")));
        }
    }
    Ok(WorkloadSpec {
        mode,
        clients: w.clients.unwrap_or(d.clients),
        pipeline: w.pipeline.unwrap_or(d.pipeline),
        keyspace: w.keyspace.unwrap_or(d.keyspace),
        value_size: w.value_size.unwrap_or(d.value_size),
        read_ratio: w.read_ratio.unwrap_or(d.read_ratio),
        track_writes: w.track_writes.unwrap_or(d.track_writes),
        op_timeout,
        groups,
    })
}

fn pinned(src: &SourceText, forms: Vec<PinnedForm>) -> Result<Vec<PinnedClient>, ScenarioError> {
    let mut out: Vec<PinnedClient> = Vec::new();
    for (i, p) in forms.into_iter().enumerate() {
        let at = YamlPath::root().key("pinned_clients").index(i);
        if p.name.trim().is_empty() {
            return Err(src.error(
                &at.key("name"),
                "a pinned client needs a name, like stale-writer",
            ));
        }
        if out.iter().any(|o| o.name == p.name) {
            return Err(src.error(
                &at.key("name"),
                format!(
                    "pinned client name `{}` is used twice; give each client its own name",
                    p.name
                ),
            ));
        }
        if p.rate == 0 {
            return Err(src.error(&at.key("rate"), "rate must be at least 1 write per second"));
        }
        out.push(PinnedClient {
            name: p.name,
            target: p.target,
            rate: p.rate,
        });
    }
    Ok(out)
}

fn steps(
    src: &SourceText,
    forms: Vec<StepForm>,
    timeout: Duration,
) -> Result<Vec<Step>, ScenarioError> {
    let list = YamlPath::root().key("steps");
    if forms.is_empty() {
        return Err(src.error(
            &list,
            "a drill needs at least one step: a fault, heal, wait or note",
        ));
    }
    let dur = super::fmt::dur;
    let mut out = Vec::with_capacity(forms.len());
    // Per fault (index = id - 1): whether it heals itself, and the line that healed it.
    let mut faults: Vec<(bool, Option<usize>)> = Vec::new();
    let mut last_at: Option<(Duration, usize)> = None;
    for (i, f) in forms.into_iter().enumerate() {
        let here = list.index(i);
        let line = src.pos(&here).0;
        let timing = match (f.at, f.after) {
            (Some(_), Some(_)) => {
                return Err(src.error(
                    &here.key_name("after"),
                    "a step starts either `at` a time since t=0 or `after` the previous step, not both; keep one",
                ))
            }
            (Some(Dur(at)), None) => {
                if at >= timeout {
                    return Err(src.error(
                        &here.key("at"),
                        format!(
                            "`at: {}` is past the drill's timeout of {}; raise `timeout` or move the step earlier",
                            dur(at),
                            dur(timeout)
                        ),
                    ));
                }
                if let Some((prev, prev_line)) = last_at {
                    if at < prev {
                        return Err(src.error(
                            &here.key("at"),
                            format!(
                                "steps run in order, and this one is at {}, before the step on line {prev_line} at {}; reorder them",
                                dur(at),
                                dur(prev)
                            ),
                        ));
                    }
                }
                last_at = Some((at, line));
                Timing::At(at)
            }
            (None, Some(Dur(after))) => Timing::After(after),
            (None, None) => Timing::Now,
        };

        let mut actions: Vec<(&str, Action)> = Vec::new();
        if let Some(x) = f.fault {
            actions.push(("fault", Action::Fault(x)));
        }
        if let Some(h) = f.heal {
            actions.push(("heal", Action::Heal(h)));
        }
        if let Some(w) = f.wait {
            let t = w.timeout.map_or(timeout, |d| d.0);
            if t.is_zero() {
                return Err(src.error(
                    &here.key("wait").key("timeout"),
                    "a wait's timeout must be longer than 0, like 30s",
                ));
            }
            if let Condition::Elapsed(d) = w.until {
                if d > t {
                    return Err(src.error(
                        &here.key("wait").key("until").key("elapsed"),
                        format!(
                            "this wait is for {} but times out after {}; raise its timeout",
                            dur(d),
                            dur(t)
                        ),
                    ));
                }
            }
            actions.push((
                "wait",
                Action::Wait {
                    until: w.until,
                    timeout: t,
                },
            ));
        }
        if let Some(n) = f.note {
            if n.trim().is_empty() {
                return Err(src.error(&here.key("note"), "the note is empty; write what it marks"));
            }
            actions.push(("note", Action::Note(n)));
        }
        let action = match actions.len() {
            0 => return Err(src.error(&here, "a step needs an action: fault, heal, wait or note")),
            1 => actions.remove(0).1,
            _ => {
                let mut keys: Vec<((usize, usize), &str)> = actions
                    .iter()
                    .map(|(k, _)| (src.pos(&here.key_name(*k)), *k))
                    .collect();
                keys.sort();
                return Err(src.error_at(
                    keys[1].0,
                    format!(
                        "a step does one thing, and this one has both `{}` and `{}`; split it into two steps",
                        keys[0].1, keys[1].1
                    ),
                ));
            }
        };

        match &action {
            Action::Fault(x) => faults.push((x.heals_itself(), None)),
            Action::Heal(HealSpec::All) => {
                if faults.is_empty() {
                    return Err(src.error(
                        &here.key("heal"),
                        "there is no fault to heal yet; a heal step comes after a fault step",
                    ));
                }
                for f in faults.iter_mut().filter(|f| !f.0) {
                    f.1.get_or_insert(line);
                }
            }
            Action::Heal(HealSpec::Fault(n)) => {
                let at = here.key("heal").key("fault");
                let n = *n;
                if n == 0 {
                    return Err(src.error(
                        &at,
                        "faults are numbered from 1, in the order their steps appear",
                    ));
                }
                let Some(fault) = faults.get_mut(n as usize - 1) else {
                    return Err(src.error(
                        &at,
                        format!(
                            "there is no fault {n} before this step ({} so far, numbered from 1 in the order their steps appear)",
                            faults.len()
                        ),
                    ));
                };
                if fault.0 {
                    return Err(src.error(
                        &at,
                        format!("fault {n} is a restart, which heals by itself; remove this step"),
                    ));
                }
                if let Some(l) = fault.1 {
                    return Err(src.error(
                        &at,
                        format!("fault {n} is already healed by the step on line {l}"),
                    ));
                }
                fault.1 = Some(line);
            }
            Action::Wait { .. } | Action::Note(_) => {}
        }
        out.push(Step {
            timing,
            action,
            line,
        });
    }
    Ok(out)
}

fn assertion(
    src: &SourceText,
    i: usize,
    text: String,
    fault_count: u32,
    workload: &WorkloadSpec,
) -> Result<Assertion, ScenarioError> {
    let path = YamlPath::root().key("assertions").index(i);
    let at = |offset: usize, message: String| {
        src.error_at(locate_in_scalar(&src.text, &path, &text, offset), message)
    };
    let (metric, op, threshold) = assertion::parse(&text).map_err(|e| at(e.offset, e.message))?;
    let metric_at = text.chars().take_while(|c| c.is_whitespace()).count();
    match metric {
        Metric::Failover { fault: None, .. } if fault_count == 0 => {
            return Err(at(
                metric_at,
                format!("{metric} measures faults, and this drill injects none; add a fault step or remove the assertion"),
            ))
        }
        Metric::Failover { fault: Some(n), .. } if n > fault_count => {
            return Err(at(
                metric_at,
                format!(
                    "there is no fault {n}: this drill injects {fault_count} (numbered from 1 in the order their steps appear)"
                ),
            ))
        }
        m if m.needs_tracked_writes() && !workload.track_writes => {
            return Err(at(
                metric_at,
                format!("{metric} needs `track_writes: true` in the workload; without write ids there is nothing to check"),
            ))
        }
        _ => {}
    }
    let line = src.pos(&path).0;
    Ok(Assertion {
        text,
        metric,
        op,
        threshold,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "description: d\ntopology: redis-sentinel\n";

    fn parse_ok(body: &str) -> Scenario {
        let text = format!("{HEAD}{body}");
        parse("t.yaml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// The error as "line:col: message".
    fn parse_err(body: &str) -> String {
        let text = format!("{HEAD}{body}");
        match parse("t.yaml", &text) {
            Ok(_) => panic!("parsed:\n{text}"),
            Err(e) => e.to_string().trim_start_matches("t.yaml:").to_string(),
        }
    }

    #[test]
    fn fills_in_defaults() {
        let s = parse_ok("steps:\n  - note: start\n");
        assert_eq!(s.workload, WorkloadSpec::default());
        assert_eq!(s.warmup, DEFAULT_WARMUP);
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        assert_eq!(
            s.steps,
            vec![Step {
                timing: Timing::Now,
                action: Action::Note("start".into()),
                line: 4
            }]
        );
        assert!(s.assertions.is_empty() && s.pinned_clients.is_empty() && s.set.is_empty());
    }

    #[test]
    fn restart_loops_and_the_sentinel_leader() {
        let s = parse_ok(
            "\
steps:
  - fault: {restart_loop: {target: {replica_of: g1}, every: 5s, for: 30s}}
  - fault: {restart_loop: {target: {node: redis-2}, every: 1m}}
  - fault: {kill: {target: {sentinel_leader: g1}}}
",
        );
        let actions: Vec<&Action> = s.steps.iter().map(|s| &s.action).collect();
        assert_eq!(
            actions[0],
            &Action::Fault(FaultSpec::RestartLoop {
                target: Target::ReplicaOf("g1".into()),
                every: Duration::from_secs(5),
                duration: Some(Duration::from_secs(30)),
            })
        );
        assert_eq!(
            actions[1],
            &Action::Fault(FaultSpec::RestartLoop {
                target: Target::Node("redis-2".into()),
                every: Duration::from_secs(60),
                duration: None,
            })
        );
        assert_eq!(
            actions[2],
            &Action::Fault(FaultSpec::Kill {
                target: Target::SentinelLeader("g1".into()),
                signal: "SIGKILL".into()
            })
        );
        let e = parse_err(
            "steps:\n  - fault: {restart_loop: {target: {node: redis-2}, every: 200ms}}\n",
        );
        assert!(e.starts_with("4:") && e.contains("at least 1s"), "{e}");
        let e = parse_err("steps:\n  - fault: {restart_loop: {target: {node: redis-2}}}\n");
        assert!(e.starts_with("4:") && e.contains("every"), "{e}");
    }

    #[test]
    fn leader_crash_arms_sentinels_for_a_while() {
        let s = parse_ok(
            "\
steps:
  - fault: {leader_crash: {target: {sentinels: {part: all}}, within: 30s}}
  - fault: {leader_crash: {target: {node: sentinel-2}}}
",
        );
        let actions: Vec<&Action> = s.steps.iter().map(|s| &s.action).collect();
        assert_eq!(
            actions[0],
            &Action::Fault(FaultSpec::LeaderCrash {
                target: Target::Sentinels {
                    part: Part::All,
                    seed: None
                },
                within: Duration::from_secs(30),
            })
        );
        assert_eq!(
            actions[1],
            &Action::Fault(FaultSpec::LeaderCrash {
                target: Target::Node("sentinel-2".into()),
                within: DEFAULT_LEADER_CRASH_WITHIN,
            })
        );
        let Action::Fault(f) = actions[0] else {
            panic!("not a fault: {:?}", actions[0]);
        };
        assert_eq!(
            f.to_string(),
            "crash the next elected leader among every Sentinel (armed up to 30 s)"
        );
        let e = parse_err(
            "steps:\n  - fault: {leader_crash: {target: {sentinels: {part: all}}, within: soon}}\n",
        );
        assert!(e.starts_with("4:") && e.contains("soon"), "{e}");
        let e = parse_err(
            "steps:\n  - fault: {leader_crash: {target: {sentinels: {part: all}}, for: 3s}}\n",
        );
        assert!(
            e.starts_with("4:") && e.contains("unknown field `for`"),
            "{e}"
        );
    }

    #[test]
    fn reads_every_kind_of_step() {
        let s = parse_ok(
            "\
set: {down-after-milliseconds: 3000, maxmemory-policy: noeviction, ratio: 0.5}
steps:
  - at: 1s
    fault: {kill: {target: {node: redis-1}, signal: term}}
  - fault: {stop: {target: {master_of: g1}}}
  - fault: {restart: {target: {replica_of: g2}}}
  - after: 500ms
    fault:
      pause:
        target: {any_of: {role: sentinel, seed: 7}}
        for: 8s
  - heal: {fault: 1}
  - heal: all
  - wait: {until: healthy}
  - wait: {until: {promoted: g1}, timeout: 30s}
  - wait: {until: {role: {node: redis-1, is: replica}}, timeout: 30s}
  - wait: {until: {link_up: redis-1}, timeout: 30s}
  - wait: {until: {event: +switch-master}, timeout: 30s}
  - wait: {until: {elapsed: 2s}, timeout: 5s}
",
        );
        assert_eq!(s.set["down-after-milliseconds"], "3000");
        assert_eq!(s.set["ratio"], "0.5");
        let actions: Vec<&Action> = s.steps.iter().map(|s| &s.action).collect();
        let t = |x: Target| x;
        assert_eq!(
            actions[0],
            &Action::Fault(FaultSpec::Kill {
                target: t(Target::Node("redis-1".into())),
                signal: "SIGTERM".into()
            })
        );
        assert_eq!(
            actions[1],
            &Action::Fault(FaultSpec::Stop {
                target: Target::MasterOf("g1".into()),
                grace: Duration::from_secs(10)
            })
        );
        assert_eq!(
            actions[3],
            &Action::Fault(FaultSpec::Pause {
                target: Target::AnyOf {
                    role: Role::Sentinel,
                    seed: Some(7)
                },
                duration: Some(Duration::from_secs(8))
            })
        );
        assert_eq!(s.steps[3].timing, Timing::After(Duration::from_millis(500)));
        assert_eq!(s.steps[3].line, 9);
        assert_eq!(actions[4], &Action::Heal(HealSpec::Fault(1)));
        assert_eq!(actions[5], &Action::Heal(HealSpec::All));
        assert_eq!(
            actions[6],
            &Action::Wait {
                until: Condition::Healthy,
                timeout: DEFAULT_TIMEOUT
            }
        );
        assert_eq!(
            actions[10],
            &Action::Wait {
                until: Condition::Event(SentinelEvent::SwitchMaster),
                timeout: Duration::from_secs(30)
            }
        );
        let ids: Vec<(u32, usize)> = s.faults().map(|(id, i, _)| (id, i)).collect();
        assert_eq!(ids, vec![(1, 0), (2, 1), (3, 2), (4, 3)]);
    }

    #[test]
    fn reads_slow_disk_and_refuses_one_without_a_limit() {
        let s = parse_ok(
            "steps:\n  - fault: {slow_disk: {target: {master_of: g1}, write_bps: 1m, iops: 20, for: 10s}}\n",
        );
        let (_, _, spec) = s.faults().next().expect("one fault");
        let FaultSpec::Resource(r) = spec else {
            panic!("{spec:?}");
        };
        assert_eq!(r.duration, Some(Duration::from_secs(10)));
        assert_eq!(
            r.fault_kind(),
            crate::fault::Kind::SlowDisk {
                limits: crate::fault::disk::Limits {
                    read_bps: 0,
                    write_bps: 1 << 20,
                    read_iops: 20,
                    write_iops: 20,
                },
                place: None,
            }
        );
        assert_eq!(
            parse_err("steps:\n  - fault: {slow_disk: {target: {node: a}}}\n"),
            "4:12: steps[0].fault: slow_disk needs at least one non-zero limit: write_bps, read_bps or iops"
        );
    }

    #[test]
    fn reads_the_workload() {
        let s = parse_ok(
            "workload: {mode: open, rate: 2000, clients: 4, read_ratio: 1, op_timeout: 250ms, groups: [g1]}\nsteps: [{note: x}]\n",
        );
        assert_eq!(s.workload.mode, LoadMode::Open { rate: 2000 });
        assert_eq!(s.workload.read_ratio, 1.0);
        assert_eq!(s.workload.op_timeout, Duration::from_millis(250));
        assert_eq!(s.workload.groups, vec!["g1".to_string()]);
    }

    #[test]
    fn yaml_errors_point_at_the_value() {
        assert_eq!(
            parse_err("steps:\n  - at: 5x\n    note: n\n"),
            "4:9: steps[0].at: `5x` is not a duration; write it like 500ms, 5s or 1m30s"
        );
        assert_eq!(
            parse_err("steps:\n  - at: 5\n    note: n\n"),
            "4:9: steps[0].at: `5` has no unit; write 5s or 5ms"
        );
        assert_eq!(
            parse_err("steps:\n  - fault: {kil: {target: {node: a}}}\n"),
            "4:13: steps[0].fault: unknown field `kil`, expected one of `kill`, `stop`, `restart`, `restart_loop`, `pause`, `isolate`, `partition`, `one_way`, `cut_clients`, `loss`, `latency`, `node_latency`, `timeout`, `reset`, `stress`, `disk_full`, `clock_skew`, `slow_disk`, `leader_crash`; did you mean `kill`?"
        );
        assert_eq!(
            parse_err("steps:\n  - fault: {kill: {target: {node: a}}, stop: {target: {node: a}}}\n"),
            "4:12: steps[0].fault: a fault takes one key of kill, stop, restart, restart_loop, pause, isolate, partition, one_way, cut_clients, loss, latency, node_latency, timeout, reset, stress, disk_full, clock_skew, slow_disk or leader_crash, and this one has kill and stop"
        );
        assert_eq!(
            parse_err("steps:\n  - fault: {kill: {target: {}}}\n"),
            "4:28: steps[0].fault.kill.target: a target needs one key: node, master_of, replica_of, any_of, sentinels, zone or sentinel_leader"
        );
        assert_eq!(
            parse_err("steps:\n  - heal: some\n"),
            "4:11: steps[0].heal: unknown heal `some`; write `all`, or a map with one key: fault"
        );
        assert_eq!(
            parse_err("steps:\n  - wait: {until: {event: +swich-master}}\n"),
            "4:27: steps[0].wait.until.event: `+swich-master` is not a Sentinel event; did you mean `+switch-master`?"
        );
        assert_eq!(
            parse_err("steps:\n  - fault: {kill: {target: {node: a}, signal: SIGFOO}}\n"),
            "4:47: steps[0].fault.kill.signal: `SIGFOO` is not a signal lab sends; use one of SIGKILL, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGABRT, SIGSEGV, SIGUSR1, SIGUSR2"
        );
        assert_eq!(
            parse_err("workload: {mode: opn}\nsteps: [{note: x}]\n"),
            "3:18: workload.mode: unknown variant `opn`, expected `open` or `closed`; did you mean `open`?"
        );
        assert_eq!(
            parse_err("set: {appendonly: true}\nsteps: [{note: x}]\n"),
            "3:19: set.appendonly: `true` is a boolean; a setting value is text or a number, so quote it: \"yes\""
        );
        assert_eq!(
            parse("t.yaml", "# nothing\n").map_err(|e| e.to_string()).err().as_deref(),
            Some("t.yaml:1:1: the drill file is empty; start from one of the drills in scenarios/ (see docs/drills.md)")
        );
    }

    #[test]
    fn step_errors_point_at_the_step() {
        assert_eq!(
            parse_err("steps:\n  - at: 1s\n    after: 2s\n    note: n\n"),
            "5:5: a step starts either `at` a time since t=0 or `after` the previous step, not both; keep one"
        );
        assert_eq!(
            parse_err("steps:\n  - at: 1s\n"),
            "4:5: a step needs an action: fault, heal, wait or note"
        );
        assert_eq!(
            parse_err("steps:\n  - note: n\n    heal: all\n"),
            "5:5: a step does one thing, and this one has both `note` and `heal`; split it into two steps"
        );
        assert_eq!(
            parse_err("steps:\n  - heal: all\n"),
            "4:11: there is no fault to heal yet; a heal step comes after a fault step"
        );
        let kill = "  - fault: {kill: {target: {node: a}}}\n";
        assert_eq!(
            parse_err(&format!("steps:\n{kill}  - heal: {{fault: 2}}\n")),
            "5:19: there is no fault 2 before this step (1 so far, numbered from 1 in the order their steps appear)"
        );
        assert_eq!(
            parse_err(&format!(
                "steps:\n{kill}  - heal: {{fault: 1}}\n  - heal: {{fault: 1}}\n"
            )),
            "6:19: fault 1 is already healed by the step on line 5"
        );
        assert_eq!(
            parse_err("steps:\n  - fault: {restart: {target: {node: a}}}\n  - heal: {fault: 1}\n"),
            "5:19: fault 1 is a restart, which heals by itself; remove this step"
        );
        assert_eq!(
            parse_err("steps:\n  - {at: 5s, note: a}\n  - {at: 3s, note: b}\n"),
            "5:10: steps run in order, and this one is at 3 s, before the step on line 4 at 5 s; reorder them"
        );
        assert_eq!(
            parse_err("timeout: 10s\nsteps:\n  - {at: 15s, note: a}\n"),
            "5:10: `at: 15 s` is past the drill's timeout of 10 s; raise `timeout` or move the step earlier"
        );
        assert_eq!(
            parse_err("steps:\n  - wait: {until: {elapsed: 10s}, timeout: 5s}\n"),
            "4:29: this wait is for 10 s but times out after 5 s; raise its timeout"
        );
        assert_eq!(
            parse_err("steps: []\n"),
            "3:8: a drill needs at least one step: a fault, heal, wait or note"
        );
    }

    #[test]
    fn workload_errors() {
        assert_eq!(
            parse_err("workload:\n  mode: open\nsteps: [{note: x}]\n"),
            "4:9: an open-loop workload sends at a fixed pace; add `rate:` (operations per second, like 2000)"
        );
        assert_eq!(
            parse_err("workload:\n  rate: 100\nsteps: [{note: x}]\n"),
            "4:9: `rate` sets the pace of an open-loop workload; add `mode: open` or remove `rate`"
        );
        assert_eq!(
            parse_err("workload:\n  read_ratio: 1.5\nsteps: [{note: x}]\n"),
            "4:15: read_ratio is the share of reads, from 0 to 1 (0.5 is half reads), not 1.5"
        );
        assert_eq!(
            parse_err("workload:\n  clients: 0\nsteps: [{note: x}]\n"),
            "4:12: clients must be at least 1"
        );
        assert_eq!(
            parse_err("workload:\n  groups: []\nsteps: [{note: x}]\n"),
            "4:11: `groups: []` gives no group any load; remove it to load every group"
        );
        assert_eq!(
            parse_err("pinned_clients:\n  - {name: a, target: {node: x}, rate: 1}\n  - {name: a, target: {node: x}, rate: 1}\nsteps: [{note: x}]\n"),
            "5:12: pinned client name `a` is used twice; give each client its own name"
        );
    }

    #[test]
    fn assertion_errors_point_inside_the_string() {
        let kill = "steps:\n  - fault: {kill: {target: {node: a}}}\nassertions:\n";
        assert_eq!(
            parse_err(&format!("{kill}  - failover.unavailable < 30\n")),
            "6:28: `30` has no unit; failover.unavailable is a duration, write `30s` or `30ms`"
        );
        assert_eq!(
            parse_err(&format!("{kill}  - \"lost_writes = 0\"\n")),
            "6:18: `=` is not an operator; write `==`"
        );
        assert_eq!(
            parse_err(&format!("{kill}  - fault[2].promotion == none\n")),
            "6:5: there is no fault 2: this drill injects 1 (numbered from 1 in the order their steps appear)"
        );
        assert_eq!(
            parse_err("steps: [{note: x}]\nassertions: [failover.detection < 5s]\n"),
            "4:14: failover.detection measures faults, and this drill injects none; add a fault step or remove the assertion"
        );
        assert_eq!(
            parse_err("workload: {track_writes: false}\nsteps: [{note: x}]\nassertions: [lost_writes == 0]\n"),
            "5:14: lost_writes needs `track_writes: true` in the workload; without write ids there is nothing to check"
        );
        let s = parse_ok(&format!(
            "{kill}  - failover.promotion != none\n  - availability >= 99.9%\n"
        ));
        assert_eq!(s.assertions[1].line, 7);
        assert_eq!(s.assertions[1].text, "availability >= 99.9%");
    }
}
