//! Text that came from the network or from a host (member names from the DCS, Patroni's
//! messages, command output, server errors), made safe to print: a terminal acts on control
//! characters — it clears the screen, moves the cursor, retitles the window, rewrites a line
//! after `\r` — so a hostile or broken peer could forge or hide what the operator reads.
//! Renderers pass such text through here at the point of printing; the data model and the
//! journal keep the exact text, as JSON strings.
//!
//! Removed: C0 controls, DEL, C1 controls (U+0080–U+009F), and whole escape sequences (CSI,
//! OSC and the other strings, two-character escapes), so that no `[2J` is left behind. Tabs
//! become spaces (a table cannot align them); newlines become spaces on one line and stay
//! where several lines are meant.

use std::borrow::Cow;
use std::iter::Peekable;
use std::str::Chars;

const ESC: char = '\u{1b}';
const BEL: char = '\u{7}';
/// The 8-bit forms of `ESC [` (CSI) and of `ESC \` (ST, the string terminator).
const CSI: char = '\u{9b}';
const ST: char = '\u{9c}';
/// The 8-bit forms of the strings that run until ST: DCS, SOS, OSC, PM, APC.
const STRING_STARTS: [char; 5] = ['\u{90}', '\u{98}', '\u{9d}', '\u{9e}', '\u{9f}'];

/// `text` on one line, with nothing a terminal would act on: for table cells, log lines and
/// one-line messages.
pub fn printable(text: &str) -> Cow<'_, str> {
    clean(text, Newlines::AsSpaces)
}

/// `text` with its line breaks kept and nothing else a terminal would act on: for texts meant
/// to span lines (a rendered plan, an error quoting a log).
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    clean(text, Newlines::Keep)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Newlines {
    Keep,
    AsSpaces,
}

fn clean(text: &str, newlines: Newlines) -> Cow<'_, str> {
    let kept = |character: char| newlines == Newlines::Keep && character == '\n';
    if !text
        .chars()
        .any(|character| character.is_control() && !kept(character))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(character) = chars.next() {
        match character {
            '\n' if newlines == Newlines::Keep => out.push('\n'),
            '\n' | '\t' => out.push(' '),
            ESC => skip_escape(&mut chars),
            CSI => skip_control_sequence(&mut chars),
            start if STRING_STARTS.contains(&start) => skip_string(&mut chars),
            control if control.is_control() => {}
            other => out.push(other),
        }
    }
    Cow::Owned(out)
}

/// After ESC: the rest of the sequence it starts. A lone ESC (followed by a control, by
/// non-ASCII text or by nothing) is dropped alone.
fn skip_escape(chars: &mut Peekable<Chars<'_>>) {
    match chars.peek() {
        Some('[') => {
            chars.next();
            skip_control_sequence(chars);
        }
        Some(']' | 'P' | 'X' | '^' | '_') => {
            chars.next();
            skip_string(chars);
        }
        // Intermediate bytes, then one final byte: `ESC ( B`, `ESC # 8`, `ESC c`, `ESC 7`.
        Some(' '..='/') => {
            while chars.next_if(|next| matches!(next, ' '..='/')).is_some() {}
            chars.next_if(|next| matches!(next, '0'..='~'));
        }
        Some('0'..='~') => {
            chars.next();
        }
        _ => {}
    }
}

/// After CSI: parameter bytes, intermediate bytes and the final byte (`2J`, `31m`, `?25l`).
/// Stops short at anything else, which is then judged on its own.
fn skip_control_sequence(chars: &mut Peekable<Chars<'_>>) {
    while chars.next_if(|next| matches!(next, '0'..='?')).is_some() {}
    while chars.next_if(|next| matches!(next, ' '..='/')).is_some() {}
    chars.next_if(|next| matches!(next, '@'..='~'));
}

/// After OSC, DCS and the like: the string up to and including its terminator (BEL, ST or
/// `ESC \`). An unterminated string ends at the line's end: it must not swallow the next line.
fn skip_string(chars: &mut Peekable<Chars<'_>>) {
    while let Some(&next) = chars.peek() {
        match next {
            BEL | ST => {
                chars.next();
                return;
            }
            ESC => {
                chars.next();
                chars.next_if_eq(&'\\');
                return;
            }
            '\n' => return,
            _ => {
                chars.next();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escape_sequences_go_whole() {
        assert_eq!(printable("node9\x1b[2J\x1b[31m"), "node9");
        assert_eq!(printable("\x1b[1;31mred\x1b[0m text"), "red text");
        assert_eq!(printable("a\x1b[?25lb"), "ab", "private parameters");
        assert_eq!(printable("a\x1b(Bb\x1bcc"), "abc", "two-character escapes");
    }

    #[test]
    fn strings_go_up_to_their_terminator() {
        assert_eq!(
            printable("\x1b]0;pwned\x07node1"),
            "node1",
            "OSC ended by BEL"
        );
        assert_eq!(
            printable("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\"),
            "link",
            "a hyperlink keeps its visible text"
        );
        assert_eq!(printable("a\x1bPq#0\x1b\\b"), "ab", "DCS");
        assert_eq!(
            printable_lines("\x1b]0;unterminated\nnext line"),
            "\nnext line"
        );
    }

    #[test]
    fn c0_controls_and_del_go() {
        assert_eq!(printable("ok\rFAILED"), "okFAILED", "carriage return");
        assert_eq!(printable("ding\x07"), "ding", "bell");
        assert_eq!(printable("abc\x08\x08x"), "abcx", "backspace");
        assert_eq!(printable("a\x00b\x7fc\x0ed"), "abcd", "NUL, DEL, shift out");
    }

    #[test]
    fn c1_controls_go_with_their_sequences() {
        assert_eq!(printable("a\u{9b}2Jb"), "ab", "8-bit CSI");
        assert_eq!(printable("a\u{9d}0;title\u{9c}b"), "ab", "8-bit OSC and ST");
        assert_eq!(printable("a\u{85}b\u{80}c"), "abc");
    }

    #[test]
    fn a_lone_escape_goes_alone() {
        assert_eq!(printable("end\x1b"), "end");
        assert_eq!(
            printable("a\x1b\x1bb"),
            "a",
            "the second ESC starts `ESC b`"
        );
        assert_eq!(printable("a\x1b\u{e9}t\u{e9}"), "a\u{e9}t\u{e9}");
    }

    #[test]
    fn line_breaks_and_tabs() {
        assert_eq!(printable("one\ntwo\tthree"), "one two three");
        assert_eq!(printable_lines("one\r\ntwo\tthree\n"), "one\ntwo three\n");
    }

    #[test]
    fn clean_text_is_borrowed_unchanged() {
        for text in ["node1", "n\u{153}ud \u{2014} \u{2713} 0/5000000", ""] {
            assert!(matches!(printable(text), Cow::Borrowed(same) if same == text));
        }
        assert!(matches!(printable_lines("a\nb"), Cow::Borrowed(_)));
    }

    proptest! {
        #[test]
        fn nothing_a_terminal_acts_on_survives(text in "\\PC{0,16}([\\x00-\\x1f\\x7f-\\u{9f}]\\PC{0,4}){0,8}") {
            let line = printable(&text);
            prop_assert!(!line.chars().any(char::is_control), "{line:?}");
            let lines = printable_lines(&text);
            prop_assert!(!lines.chars().any(|c| c.is_control() && c != '\n'), "{lines:?}");
            prop_assert_eq!(printable(&line), line.clone(), "cleaning is idempotent");
        }
    }
}
