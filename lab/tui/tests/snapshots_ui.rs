//! Every panel in its key states, drawn on ratatui's TestBackend at 80x24 (the smallest
//! supported terminal) and compared with stored pictures (insta). The states are fixed
//! fixtures, so no time or id needs filtering.

use lab_core::live::Snapshot;
use lab_tui::app::{App, Overlay};
use lab_tui::{fixture, ui};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn screen(snap: &Snapshot, app: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    t.draw(|f| ui::draw(f, app, snap)).expect("draw");
    t.backend().to_string()
}

#[test]
fn healthy() {
    let s = screen(&fixture::healthy(), &App::default());
    assert!(s.contains("redis-1") && s.contains("sentinel-3"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn node_down() {
    let s = screen(&fixture::node_down(), &App::default());
    assert!(
        s.contains("down") && s.contains("F1!") && s.contains("replica!"),
        "{s}"
    );
    insta::assert_snapshot!(s);
}

#[test]
fn failover_in_progress() {
    let s = screen(&fixture::failover_in_progress(), &App::default());
    assert!(s.contains("in progress") && s.contains("+odown"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn failover_measured() {
    let s = screen(&fixture::failover_measured(), &App::default());
    assert!(
        s.contains("measured") && s.contains("promote 2.41s") && s.contains("unavailability 2.97s"),
        "{s}"
    );
    insta::assert_snapshot!(s);
}

#[test]
fn unsupported_fault_refused() {
    let s = screen(&fixture::fault_refused(), &App::default());
    assert!(
        s.contains("REFUSED") && s.contains("isolate redis-3"),
        "{s}"
    );
    insta::assert_snapshot!(s);
}

#[test]
fn help_overlay() {
    let app = App {
        overlay: Overlay::Help,
        ..App::default()
    };
    let s = screen(&fixture::healthy(), &app);
    for (k, _) in lab_tui::app::KEYS {
        assert!(s.contains(k), "help lacks {k}:\n{s}");
    }
    insta::assert_snapshot!(s);
}

#[test]
fn quit_dialog() {
    let app = App {
        overlay: Overlay::QuitHeal,
        ..App::default()
    };
    let s = screen(&fixture::node_down(), &app);
    assert!(s.contains("Heal the 1 fault(s)"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn large_terminal_and_large_state() {
    let snap = fixture::large(20, 10);
    let mut t = Terminal::new(TestBackend::new(160, 50)).expect("test terminal");
    t.draw(|f| ui::draw(f, &App::default(), &snap))
        .expect("draw");
    let s = t.backend().to_string();
    assert!(s.contains("redis-20"), "{s}");
}
