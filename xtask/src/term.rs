//! What the user sees on the terminal: colours, status lines, progress bars, and sizes and ages for people.
//!
//! Colours follow anstream's choice for the stream (a terminal, `NO_COLOR`, `CLICOLOR`, `CLICOLOR_FORCE`);
//! progress bars are indicatif's, drawn only on a terminal, and every line printed while a bar is shown (the
//! echo, status lines, a child's teed stderr, from any thread) goes through [`line`], which clears the bar for
//! the line and redraws it, so bar and text never tear.

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anstream::ColorChoice;
use anstyle::{AnsiColor, Effects, Style as Ansi};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// ANSI styling for one stream, enabled only when anstream would colour that stream.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    enabled: bool,
}

impl Style {
    pub fn stderr() -> Self {
        Style {
            enabled: anstream::AutoStream::choice(&io::stderr()) != ColorChoice::Never,
        }
    }

    pub fn stdout() -> Self {
        Style {
            enabled: anstream::AutoStream::choice(&io::stdout()) != ColorChoice::Never,
        }
    }

    fn paint(&self, style: Ansi, text: &str) -> String {
        if self.enabled {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint(Ansi::new().effects(Effects::DIMMED), text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint(Ansi::new().bold(), text)
    }

    pub fn green(&self, text: &str) -> String {
        self.paint(AnsiColor::Green.on_default(), text)
    }

    pub fn red(&self, text: &str) -> String {
        self.paint(AnsiColor::Red.on_default(), text)
    }

    pub fn yellow(&self, text: &str) -> String {
        self.paint(AnsiColor::Yellow.on_default(), text)
    }
}

/// The progress bars on screen now (at most a few: parallel backup parts show one).
static SHOWN: Mutex<Vec<(u64, ProgressBar)>> = Mutex::new(Vec::new());
/// Names the bars in [`SHOWN`].
static NEXT_BAR: AtomicU64 = AtomicU64::new(0);

/// Prints one whole line on stderr; with a progress bar on screen, clears it for the line and redraws it.
pub fn line(text: &str) {
    let shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    let print = || {
        let mut err = io::stderr().lock();
        let _ = writeln!(err, "{text}");
    };
    match shown.last() {
        Some((_, bar)) => bar.suspend(print),
        None => print(),
    }
}

/// Prints a status line for the user on stderr (suppressed by `-q`).
pub fn say(quiet: bool, text: &str) {
    if !quiet {
        line(&Style::stderr().bold(&format!("==> {text}")));
    }
}

/// A long transfer's progress bar (bytes, rate, ETA when the total is known) on stderr, drawn only on a
/// terminal and never with `-q`.
pub struct Progress {
    id: u64,
    bar: ProgressBar,
}

impl Progress {
    pub fn new(label: &str, total: Option<u64>, quiet: bool) -> Progress {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let (bar, template) = match total {
            Some(total) => (
                ProgressBar::with_draw_target(Some(total), target),
                "  {msg}: [{bar:30}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, ETA {eta})",
            ),
            None => (
                ProgressBar::with_draw_target(None, target),
                "  {msg}: {bytes} ({binary_bytes_per_sec}, {elapsed})",
            ),
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("a valid progress template")
                .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        let id = NEXT_BAR.fetch_add(1, Ordering::Relaxed);
        if !bar.is_hidden() {
            bar.enable_steady_tick(Duration::from_millis(250));
            SHOWN.lock().unwrap_or_else(|e| e.into_inner()).push((id, bar.clone()));
        }
        Progress { id, bar }
    }

    /// A bar that never draws (dry runs, tests).
    pub fn hidden() -> Progress {
        Progress {
            id: NEXT_BAR.fetch_add(1, Ordering::Relaxed),
            bar: ProgressBar::hidden(),
        }
    }

    pub fn update(&mut self, bytes: u64) {
        self.bar.set_position(bytes);
    }

    /// Clears the bar and takes it off the screen for good.
    pub fn finish(&mut self) {
        let mut shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
        shown.retain(|(id, _)| *id != self.id);
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Text made safe inside HTML or XML (element text and quoted attributes): the five special characters as
/// entities (`&#39;` for the apostrophe, which both read), control characters but newline and tab dropped (XML
/// forbids them).
pub fn markup_escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// `1.2 GB`, `340.0 MB`, `12 B`: sizes for people (decimal units, like `df -H`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `3d 4h`, `12m`: the age of a backup.
pub fn human_age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s / 60 % 60),
        s => format!("{}d {}h", s / 86_400, s / 3600 % 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1_500), "1.5 kB");
        assert_eq!(human_bytes(340_000_000), "340.0 MB");
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(3 * 86_400 + 4 * 3600), "3d 4h");
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            markup_escape("a <b> & \"c\" 'd'\u{7}\n"),
            "a &lt;b&gt; &amp; &quot;c&quot; &#39;d&#39;\n"
        );
    }

    #[test]
    fn disabled_style_is_plain_text() {
        let style = Style { enabled: false };
        assert_eq!(style.red("x"), "x");
        let style = Style { enabled: true };
        assert!(style.red("x").starts_with("\x1b["), "{:?}", style.red("x"));
    }
}
