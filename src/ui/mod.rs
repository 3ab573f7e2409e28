//! Presentation helpers shared by every command: output formats, the patronictl-like table
//! style, human-readable sizes, writing documents to stdout, when to colour, and text from
//! outside made printable (`printable`). stdout carries data only; logs, progress and prompts
//! go to stderr.

pub mod json;
mod printable;

pub use printable::{printable, printable_lines};

use std::ffi::OsStr;
use std::io::{IsTerminal, Write};

use serde::Serialize;
use tabled::builder::Builder;
use tabled::settings::object::{Columns, Object, Rows};
use tabled::settings::style::{HorizontalLine, LineText};
use tabled::settings::{Alignment, Modify, Style};

/// `-o table|json|yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Yaml,
}

/// Bytes the way an operator reads them: `0 B`, `512 B`, `1.5 KiB`, `770.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)] // a display value: one decimal is all we show
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A table in `patronictl list`'s style, with `title` written into the top border. Cells and
/// title are made printable: they carry names and words from the cluster.
pub fn table(
    title: Option<&str>,
    header: &[&str],
    rows: Vec<Vec<String>>,
    right_aligned: &[usize],
) -> String {
    let mut builder = Builder::default();
    builder.push_record(header.iter().map(|cell| (*cell).to_string()));
    for row in rows {
        builder.push_record(row.iter().map(|cell| printable(cell).into_owned()));
    }
    let mut table = builder.build();
    // patronictl's look: a frame and one rule under the header, no rule between rows.
    table.with(
        Style::ascii()
            .remove_horizontal()
            .horizontals([(1, HorizontalLine::full('-', '+', '+', '+'))]),
    );
    for column in right_aligned {
        table.with(Modify::new(Columns::one(*column).not(Rows::first())).with(Alignment::right()));
    }
    if let Some(title) = title {
        table.with(LineText::new(
            format!("+ {} ", printable(title)),
            Rows::first(),
        ));
    }
    table.to_string()
}

/// Writes a document to stdout as JSON or YAML. Table output is each command's own.
pub fn write_document<T: Serialize>(format: OutputFormat, document: &T) -> std::io::Result<()> {
    let text = render_document(format, document)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

pub fn render_document<T: Serialize>(
    format: OutputFormat,
    document: &T,
) -> std::io::Result<String> {
    match format {
        OutputFormat::Json | OutputFormat::Table => {
            let mut text = json::pretty(document)?;
            text.push('\n');
            Ok(text)
        }
        OutputFormat::Yaml => serde_saphyr::to_string(document).map_err(std::io::Error::other),
    }
}

/// Whether to colour what goes to stdout: only a terminal, never under `NO_COLOR` or `TERM=dumb`.
pub fn colour_stdout() -> bool {
    colour_allowed() && std::io::stdout().is_terminal()
}

/// Whether to colour what goes to stderr (logs, progress, prompts): the same rule as stdout's.
pub fn colour_stderr() -> bool {
    colour_allowed() && std::io::stderr().is_terminal()
}

/// Makes `console`, which draws indicatif's bars and dialoguer's prompts, colour exactly when
/// pgha does. On its own it decides otherwise in corners: an empty `NO_COLOR` turns its colour
/// off, and `CLICOLOR_FORCE` turns it on even into a pipe.
pub fn init_colour() {
    dialoguer::console::set_colors_enabled(colour_stdout());
    dialoguer::console::set_colors_enabled_stderr(colour_stderr());
}

fn colour_allowed() -> bool {
    colour_allowed_by(
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
    )
}

/// <https://no-color.org>: `NO_COLOR` present and not empty means no colour. A `dumb` terminal
/// (an editor's shell buffer) would show the escape codes as text.
fn colour_allowed_by(no_color: Option<&OsStr>, term: Option<&OsStr>) -> bool {
    no_color.is_none_or(OsStr::is_empty) && term.is_none_or(|term| term != "dumb")
}

/// Text that must be seen: bold red on a terminal that takes colour, plain otherwise.
pub fn loud(text: &str) -> String {
    if colour_stdout() {
        format!("\x1b[1;31m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Prints a line to stdout, ignoring a closed pipe (`pgha status | head` must not panic).
pub fn print_stdout(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The innermost cause of an error chain: "Connection refused (os error 111)" rather than
/// "error sending request for url (…)".
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::{colour_allowed_by, human_bytes, table};

    #[test]
    fn table_cells_and_title_are_printable() {
        let text = table(
            Some("Cluster: demo\x1b]0;pwned\x07"),
            &["TL", "Reason", "New Leader"],
            vec![vec![
                "2".into(),
                "no recovery\ttarget\r\x1b[2J".into(),
                "node9\x1b[31m\u{9b}5m".into(),
            ]],
            &[0],
        );
        assert!(
            !text
                .chars()
                .any(|character| character.is_control() && character != '\n'),
            "{text}"
        );
        assert!(text.starts_with("+ Cluster: demo -"), "{text}");
        assert!(text.contains("| no recovery target | node9 "), "{text}");
    }

    #[test]
    fn colour_unless_no_color_is_set_or_the_terminal_is_dumb() {
        let os = |text: &'static str| Some(OsStr::new(text));
        assert!(colour_allowed_by(None, os("xterm-256color")));
        assert!(
            colour_allowed_by(os(""), None),
            "an empty NO_COLOR is unset"
        );
        assert!(!colour_allowed_by(os("1"), os("xterm")));
        assert!(!colour_allowed_by(None, os("dumb")));
    }

    #[test]
    fn bytes_read_like_an_operator_writes_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(770 * 1024 * 1024), "770.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }
}
