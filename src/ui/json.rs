//! JSON for stdout. serde_json escapes the C0 controls in strings but writes DEL and the C1
//! controls (U+0080–U+009F: CSI among them, which some terminals obey) as they are; text from
//! the network must not reach a terminal that way, even in `-o json`. These writers escape
//! them as `\u0080`-style escapes too: still valid JSON, decoding to the very same text.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter, PrettyFormatter};

/// `value` as indented JSON, every control character escaped.
pub fn pretty<T: Serialize + ?Sized>(value: &T) -> io::Result<String> {
    write(value, Escaping(PrettyFormatter::new()))
}

/// `value` as one line of JSON, every control character escaped.
pub fn compact<T: Serialize + ?Sized>(value: &T) -> io::Result<String> {
    write(value, Escaping(CompactFormatter))
}

fn write<T: Serialize + ?Sized, F: Formatter>(value: &T, formatter: F) -> io::Result<String> {
    let mut bytes = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    value.serialize(&mut serializer).map_err(io::Error::other)?;
    String::from_utf8(bytes).map_err(io::Error::other)
}

/// A formatter that escapes what serde_json leaves raw: DEL and the C1 controls.
struct Escaping<F>(F);

fn needs_escape(character: char) -> bool {
    ('\u{7f}'..='\u{9f}').contains(&character)
}

impl<F: Formatter> Formatter for Escaping<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(at) = rest.find(needs_escape) {
            writer.write_all(&rest.as_bytes()[..at])?;
            let character = rest[at..].chars().next().unwrap_or_default();
            write!(writer, "\\u{:04x}", u32::from(character))?;
            rest = &rest[at + character.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }

    // Everything else is the wrapped formatter's: indentation, separators, numbers.
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        self.0.write_char_escape(writer, escape)
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_array(writer)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object(writer)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(writer, first)
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_key(writer)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object_value(writer)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_value(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_the_text_decodes_unchanged() {
        let hostile = "node9\u{9b}2J\u{7f}\u{1b}[31mü€";
        let document = serde_json::json!({ "name": hostile, "list": [1, "x"] });
        for text in [pretty(&document).unwrap(), compact(&document).unwrap()] {
            assert!(
                !text
                    .chars()
                    .any(|character| character.is_control() && character != '\n'),
                "{text:?}"
            );
            assert!(
                text.contains(r"\u009b") && text.contains(r"\u007f") && text.contains(r"\u001b")
            );
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back["name"], hostile);
        }
        assert_eq!(
            pretty(&document).unwrap(),
            serde_json::to_string_pretty(&document)
                .unwrap()
                .replace('\u{9b}', r"\u009b")
                .replace('\u{7f}', r"\u007f"),
            "the layout is serde_json's"
        );
    }
}
