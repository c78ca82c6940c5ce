//! What the user is doing on screen (selected node, open overlay) and what each key means.
//! Keys turn into [`Action`]s: core commands to send, or the decision to quit. No I/O here, so
//! key handling is tested without a terminal.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use lab_core::live::{Command, FaultRequest, FaultState, Snapshot, WorkloadParams};

/// Every key, for the help overlay and the README; one place so they cannot drift apart.
pub const KEYS: &[(&str, &str)] = &[
    ("Up/Down, Tab", "select a node"),
    ("k", "kill the selected node (SIGKILL)"),
    ("p", "pause it (cgroup freezer)"),
    ("s", "stop it (SIGTERM, then SIGKILL)"),
    ("r", "restart it"),
    ("i", "isolate it from the network"),
    ("l", "slow it down (added latency)"),
    ("h / H", "heal the selected node / every fault"),
    ("w", "start or stop the workload"),
    ("+ / -", "double / halve the target rate"),
    ("> / <", "more / fewer clients"),
    ("d", "run a drill file and watch it"),
    ("R", "save the session as a report"),
    ("?", "this help (Esc closes)"),
    ("q", "quit (asks about faults and the topology)"),
];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Overlay {
    #[default]
    None,
    Help,
    /// Typing a drill file's path.
    Drill {
        input: String,
    },
    /// Asking whether to heal the session's faults in force.
    QuitHeal,
    /// Asking whether to keep the topology running.
    QuitKeep {
        heal: bool,
    },
    /// Quitting: the session is healing and stopping.
    Leaving,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    None,
    Send(Command),
    Quit { heal: bool, keep_running: bool },
}

#[derive(Debug, Clone, Default)]
pub struct App {
    pub selected: usize,
    pub overlay: Overlay,
    /// Suggested when the drill prompt opens.
    pub drill_hint: String,
}

impl App {
    pub fn new(drill_hint: String) -> Self {
        App {
            selected: 0,
            overlay: Overlay::None,
            drill_hint,
        }
    }

    /// The selected node's name, if the snapshot has nodes.
    pub fn selected_node<'a>(&self, snap: &'a Snapshot) -> Option<&'a str> {
        let order = display_order(snap);
        order
            .get(self.selected.min(order.len().saturating_sub(1)))
            .map(|&i| snap.nodes[i].name.as_str())
    }

    pub fn on_key(&mut self, key: KeyEvent, snap: &Snapshot) -> Action {
        let ctrl_c =
            key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        if ctrl_c {
            // The usual interrupt: leave at once, healing, and keep the topology.
            self.overlay = Overlay::Leaving;
            return Action::Quit {
                heal: true,
                keep_running: true,
            };
        }
        match std::mem::take(&mut self.overlay) {
            Overlay::None => self.on_main_key(key, snap),
            Overlay::Help => {
                if !matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q')
                ) {
                    self.overlay = Overlay::Help;
                }
                Action::None
            }
            Overlay::Drill { mut input } => match key.code {
                KeyCode::Esc => Action::None,
                KeyCode::Enter if !input.trim().is_empty() => {
                    Action::Send(Command::RunDrill(input.trim().into()))
                }
                KeyCode::Backspace => {
                    input.pop();
                    self.overlay = Overlay::Drill { input };
                    Action::None
                }
                KeyCode::Char(c) => {
                    input.push(c);
                    self.overlay = Overlay::Drill { input };
                    Action::None
                }
                _ => {
                    self.overlay = Overlay::Drill { input };
                    Action::None
                }
            },
            Overlay::QuitHeal => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    self.overlay = Overlay::QuitKeep { heal: true };
                    Action::None
                }
                KeyCode::Char('n') | KeyCode::Char('N') => {
                    self.overlay = Overlay::QuitKeep { heal: false };
                    Action::None
                }
                _ => Action::None,
            },
            Overlay::QuitKeep { heal } => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    self.overlay = Overlay::Leaving;
                    Action::Quit {
                        heal,
                        keep_running: true,
                    }
                }
                KeyCode::Char('n') | KeyCode::Char('N') => {
                    self.overlay = Overlay::Leaving;
                    Action::Quit {
                        heal,
                        keep_running: false,
                    }
                }
                KeyCode::Esc => Action::None,
                _ => {
                    self.overlay = Overlay::QuitKeep { heal };
                    Action::None
                }
            },
            Overlay::Leaving => {
                self.overlay = Overlay::Leaving;
                Action::None
            }
        }
    }

    fn on_main_key(&mut self, key: KeyEvent, snap: &Snapshot) -> Action {
        let n = snap.nodes.len();
        let node = self.selected_node(snap).map(str::to_string);
        let fault = |f: FaultRequest| match &node {
            Some(node) => Action::Send(Command::Fault {
                node: node.clone(),
                fault: f,
            }),
            None => Action::None,
        };
        let load = |p: WorkloadParams| Action::Send(Command::SetLoad(p));
        let p = snap.workload.params;
        match key.code {
            KeyCode::Up | KeyCode::BackTab => {
                self.selected = (self.selected + n.max(1) - 1) % n.max(1);
                Action::None
            }
            KeyCode::Down | KeyCode::Tab => {
                self.selected = (self.selected + 1) % n.max(1);
                Action::None
            }
            KeyCode::Char('k') => fault(FaultRequest::Kill),
            KeyCode::Char('p') => fault(FaultRequest::Pause),
            KeyCode::Char('s') => fault(FaultRequest::Stop),
            KeyCode::Char('r') => fault(FaultRequest::Restart),
            KeyCode::Char('i') => fault(FaultRequest::Isolate),
            KeyCode::Char('l') => fault(FaultRequest::Slow),
            KeyCode::Char('h') => match node {
                Some(n) => Action::Send(Command::Heal { node: Some(n) }),
                None => Action::None,
            },
            KeyCode::Char('H') => Action::Send(Command::Heal { node: None }),
            KeyCode::Char('w') => Action::Send(if snap.workload.running {
                Command::StopLoad
            } else {
                Command::StartLoad
            }),
            KeyCode::Char('+') | KeyCode::Char('=') => load(WorkloadParams {
                rate: p.rate.saturating_mul(2).min(1_000_000),
                ..p
            }),
            KeyCode::Char('-') => load(WorkloadParams {
                rate: (p.rate / 2).max(10),
                ..p
            }),
            KeyCode::Char('>') | KeyCode::Char('.') => load(WorkloadParams {
                clients: p.clients.saturating_add(p.clients.max(2) / 2).min(1024),
                ..p
            }),
            KeyCode::Char('<') | KeyCode::Char(',') => load(WorkloadParams {
                clients: (p.clients * 2 / 3).max(1),
                ..p
            }),
            KeyCode::Char('d') => {
                self.overlay = Overlay::Drill {
                    input: self.drill_hint.clone(),
                };
                Action::None
            }
            KeyCode::Char('R') => Action::Send(Command::SaveReport),
            KeyCode::Char('?') => {
                self.overlay = Overlay::Help;
                Action::None
            }
            KeyCode::Char('q') => {
                self.overlay = if active_faults(snap) > 0 {
                    Overlay::QuitHeal
                } else {
                    Overlay::QuitKeep { heal: true }
                };
                Action::None
            }
            _ => Action::None,
        }
    }
}

/// Faults of the session in force (or being applied).
pub fn active_faults(snap: &Snapshot) -> usize {
    snap.faults
        .iter()
        .filter(|f| matches!(f.state, FaultState::Active { .. } | FaultState::Applying))
        .count()
}

/// Node indices in the order the topology panel lists them: groups (shards) in order of first
/// appearance, then the nodes without a group (Sentinels, exporters).
pub fn display_order(snap: &Snapshot) -> Vec<usize> {
    let mut groups: Vec<&str> = vec![];
    for n in &snap.nodes {
        if let Some(g) = n.group.as_deref() {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
    }
    let mut out = vec![];
    for g in &groups {
        out.extend(
            snap.nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.group.as_deref() == Some(*g))
                .map(|(i, _)| i),
        );
    }
    out.extend(
        snap.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.group.is_none())
            .map(|(i, _)| i),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    #[test]
    fn kill_key_targets_the_selected_node() {
        let snap = fixture::healthy();
        let mut app = App::default();
        assert_eq!(
            app.on_key(key('k'), &snap),
            Action::Send(Command::Fault {
                node: "redis-1".into(),
                fault: FaultRequest::Kill
            })
        );
        app.on_key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE), &snap);
        assert_eq!(
            app.on_key(key('p'), &snap),
            Action::Send(Command::Fault {
                node: "redis-2".into(),
                fault: FaultRequest::Pause
            })
        );
    }

    #[test]
    fn quit_asks_about_faults_then_the_topology() {
        let snap = fixture::node_down();
        let mut app = App::default();
        assert_eq!(app.on_key(key('q'), &snap), Action::None);
        assert_eq!(app.overlay, Overlay::QuitHeal);
        assert_eq!(app.on_key(key('y'), &snap), Action::None);
        assert_eq!(app.overlay, Overlay::QuitKeep { heal: true });
        assert_eq!(
            app.on_key(key('n'), &snap),
            Action::Quit {
                heal: true,
                keep_running: false
            }
        );
    }

    #[test]
    fn quit_without_faults_asks_only_about_the_topology() {
        let snap = fixture::healthy();
        let mut app = App::default();
        app.on_key(key('q'), &snap);
        assert_eq!(app.overlay, Overlay::QuitKeep { heal: true });
        assert_eq!(
            app.on_key(key('y'), &snap),
            Action::Quit {
                heal: true,
                keep_running: true
            }
        );
    }

    #[test]
    fn help_lists_every_bound_key_and_closes_on_escape() {
        let snap = fixture::healthy();
        let mut app = App::default();
        app.on_key(key('?'), &snap);
        assert_eq!(app.overlay, Overlay::Help);
        app.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE), &snap);
        assert_eq!(app.overlay, Overlay::None);
        for k in [
            "k", "p", "s", "r", "i", "l", "h / H", "w", "d", "R", "?", "q",
        ] {
            assert!(
                KEYS.iter().any(|(key, _)| *key == k),
                "{k} missing from help"
            );
        }
    }

    #[test]
    fn drill_prompt_sends_the_typed_path() {
        let snap = fixture::healthy();
        let mut app = App::new("scenarios/".into());
        app.on_key(key('d'), &snap);
        for c in "x.yaml".chars() {
            app.on_key(key(c), &snap);
        }
        assert_eq!(
            app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE), &snap),
            Action::Send(Command::RunDrill("scenarios/x.yaml".into()))
        );
    }
}
