//! lab-tui: the live terminal front end. It reads the snapshots a `lab_core::live` session
//! publishes, draws them (ratatui over crossterm), and turns keys into session commands.
//! All measuring, faulting and healing happens in lab-core; this crate only draws and asks.
//!
//! One `tokio::select!` reads the keyboard (crossterm's `EventStream`), the snapshot channel
//! and a redraw timer; a frame is drawn only when something changed, at most every
//! [`FRAME_MIN`]. The terminal is restored on every exit path: [`TerminalGuard`] on return and
//! unwind, and ratatui's panic hook (which chains the previous hook) on panic.

pub mod app;
#[doc(hidden)]
pub mod fixture;
pub mod ui;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures_util::StreamExt;
use lab_core::live::{Ended, LiveError, Session, Snapshot};

use crate::app::{Action, App};

/// The shortest time between two frames (20 frames per second at most).
pub const FRAME_MIN: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("the terminal failed: {0}")]
    Terminal(#[from] std::io::Error),
    #[error(transparent)]
    Live(#[from] LiveError),
}

/// Raw mode and the alternate screen while it lives; restores the terminal when dropped.
pub struct TerminalGuard {
    pub terminal: ratatui::DefaultTerminal,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen and installs ratatui's panic hook, which
    /// restores the terminal before the previous hook prints the panic.
    pub fn enter() -> std::io::Result<Self> {
        Ok(TerminalGuard {
            terminal: ratatui::try_init()?,
        })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the screen until the user quits, then ends the session as they chose.
pub async fn run(session: Session, drill_hint: String) -> Result<Ended, TuiError> {
    let mut guard = TerminalGuard::enter()?;
    let mut app = App::new(drill_hint);
    let mut snaps = session.snapshots.clone();
    let mut snap: Arc<Snapshot> = snaps.borrow_and_update().clone();
    let mut input = EventStream::new();
    let mut term_signal =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME_MIN;
    let mut snapshots_open = true;
    let (heal, keep_running) = loop {
        if dirty && last_draw.elapsed() >= FRAME_MIN {
            guard.terminal.draw(|f| ui::draw(f, &app, &snap))?;
            last_draw = Instant::now();
            dirty = false;
        }
        // Wake for a pending redraw only; otherwise sleep until input or a snapshot.
        let wait = if dirty {
            FRAME_MIN.saturating_sub(last_draw.elapsed())
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(TermEvent::Key(k))) if k.kind != KeyEventKind::Release => {
                    dirty = true;
                    match app.on_key(k, &snap) {
                        Action::None => {}
                        Action::Send(c) => session.send(c),
                        Action::Quit { heal, keep_running } => break (heal, keep_running),
                    }
                }
                Some(Ok(TermEvent::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                // The terminal is gone: heal, keep the topology.
                Some(Err(_)) | None => break (true, true),
            },
            r = snaps.changed(), if snapshots_open => match r {
                Ok(()) => {
                    snap = snaps.borrow_and_update().clone();
                    dirty = true;
                }
                Err(_) => snapshots_open = false,
            },
            _ = term_signal.recv() => break (true, true),
            _ = hangup.recv() => break (true, true),
            _ = tokio::time::sleep(wait), if dirty => {}
        }
    };
    app.overlay = app::Overlay::Leaving;
    guard.terminal.draw(|f| ui::draw(f, &app, &snap))?;
    let ended = session.shutdown(heal, keep_running).await;
    drop(guard);
    Ok(ended?)
}
