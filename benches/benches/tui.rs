//! Render cost of the live screen: one full frame (every panel) of a 20-node topology with a
//! 10-minute timeline and a full 60 s chart, drawn on ratatui's TestBackend at 80x24 and
//! 200x50. The peer, measured in the same run, is ratatui drawing the same number of text
//! lines as one plain Paragraph: the floor for any screen showing that much; read the ratio.
//!
//! `cargo bench -p lab-benches --bench tui`; `-- --test` runs each once.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use lab_tui::app::App;
use lab_tui::{fixture, ui};
use ratatui::backend::TestBackend;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Terminal;

fn render(c: &mut Criterion) {
    let snap = fixture::large(20, 10);
    let app = App::default();
    let mut g = c.benchmark_group("tui_frame_20_nodes_10_min");
    for (w, h) in [(80u16, 24u16), (200, 50)] {
        let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        g.bench_function(format!("lab_full_frame_{w}x{h}"), |b| {
            b.iter(|| {
                t.draw(|f| ui::draw(f, &app, black_box(&snap)))
                    .expect("draw");
            })
        });
        let lines: Vec<Line> = (0..h)
            .map(|i| {
                Line::from(format!(
                    "{i:>4} redis-{i} master up 16001 +switch-master g1"
                ))
            })
            .collect();
        let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        g.bench_function(format!("peer_plain_paragraph_{w}x{h}"), |b| {
            b.iter(|| {
                t.draw(|f| {
                    f.render_widget(
                        Paragraph::new(black_box(lines.clone()))
                            .block(Block::default().borders(Borders::ALL)),
                        f.area(),
                    )
                })
                .expect("draw");
            })
        });
    }
    g.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
