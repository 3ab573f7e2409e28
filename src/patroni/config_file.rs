//! The one change pgha makes to a member's Patroni configuration file: a tag (`noloadbalance`
//! to drain a replica). The file is the operator's — comments, order, layout — so the change is
//! the smallest textual edit, and it is proven by parsing: the edited file must read as the
//! original with that one tag set, or nothing is written.

use std::fmt::Write as _;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigEditError {
    #[error("it is not valid YAML ({0}): fix it by hand first")]
    Unreadable(String),
    #[error("it is not UTF-8 text")]
    NotText,
    #[error("its top level is not a mapping")]
    NotAMapping,
    #[error("its `tags` are written inline ({0}): set the tag by hand")]
    InlineTags(String),
    #[error("the edit would change more than tags.{0}: set the tag by hand")]
    UnexpectedChange(String),
}

/// `text` with `tags.<tag>: <value>` set, or `None` when it already is.
pub fn set_tag(text: &str, tag: &str, value: bool) -> Result<Option<String>, ConfigEditError> {
    if text.contains('\u{fffd}') {
        return Err(ConfigEditError::NotText);
    }
    let original = parse(text)?;
    let Value::Object(settings) = &original else {
        return Err(ConfigEditError::NotAMapping);
    };
    if settings.get("tags").and_then(|tags| tags.get(tag)) == Some(&Value::Bool(value)) {
        return Ok(None);
    }
    let edited = edit_text(text, tag, value)?;
    let mut expected = original.clone();
    set_in(&mut expected, tag, value);
    if parse(&edited)? != expected {
        return Err(ConfigEditError::UnexpectedChange(tag.into()));
    }
    Ok(Some(edited))
}

fn parse(text: &str) -> Result<Value, ConfigEditError> {
    serde_saphyr::from_str::<Value>(text).map_err(|error| {
        ConfigEditError::Unreadable(error.to_string().lines().next().unwrap_or("").into())
    })
}

fn set_in(settings: &mut Value, tag: &str, value: bool) {
    if let Value::Object(settings) = settings {
        let tags = settings
            .entry("tags")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if !tags.is_object() {
            *tags = Value::Object(serde_json::Map::new());
        }
        if let Value::Object(tags) = tags {
            tags.insert(tag.into(), Value::Bool(value));
        }
    }
}

/// The textual edit: the tag's line in the top-level `tags:` block rewritten, or added under
/// it, or a `tags:` block appended.
fn edit_text(text: &str, tag: &str, value: bool) -> Result<String, ConfigEditError> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let Some(tags_at) = lines.iter().position(|line| is_key(line, "tags")) else {
        let mut edited = text.to_string();
        if !edited.is_empty() && !edited.ends_with('\n') {
            edited.push('\n');
        }
        let _ = write!(edited, "tags:\n  {tag}: {value}\n");
        return Ok(edited);
    };
    let inline = inline_value(&lines[tags_at], "tags");
    match inline.as_str() {
        "" => {}
        "{}" => {
            lines[tags_at] = "tags:".into();
            lines.insert(tags_at + 1, format!("  {tag}: {value}"));
            return Ok(joined(&lines, text));
        }
        other => return Err(ConfigEditError::InlineTags(other.into())),
    }
    let block: Vec<usize> = (tags_at + 1..lines.len())
        .take_while(|&index| indent(&lines[index]) > 0 || is_blank(&lines[index]))
        .filter(|&index| !is_blank(&lines[index]))
        .collect();
    let child_indent = block.first().map_or(2, |&index| indent(&lines[index]));
    let existing = block.iter().copied().find(|&index| {
        indent(&lines[index]) == child_indent && is_key(&lines[index][child_indent..], tag)
    });
    let line = format!("{}{tag}: {value}", " ".repeat(child_indent));
    match existing {
        Some(index) => lines[index] = with_comment(&line, &lines[index]),
        None => lines.insert(tags_at + 1, line),
    }
    Ok(joined(&lines, text))
}

/// `key:` at the start of `line` (followed by nothing, a space or a comment).
fn is_key(line: &str, key: &str) -> bool {
    line.strip_prefix(key)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// What follows `key:` on its line, without a comment.
fn inline_value(line: &str, key: &str) -> String {
    let rest = &line[key.len() + 1..];
    let rest = rest.split(" #").next().unwrap_or("");
    rest.trim().to_string()
}

/// `line`, keeping the comment at the end of `old` if it had one.
fn with_comment(line: &str, old: &str) -> String {
    match old.find(" #") {
        Some(at) => format!("{line}{}", &old[at..]),
        None => line.to_string(),
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.is_empty() || trimmed.starts_with('#')
}

fn joined(lines: &[String], original: &str) -> String {
    let mut text = lines.join("\n");
    if original.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "scope: demo\nname: node3\nrestapi:\n  authentication:\n    password: s3cret # keep\npostgresql:\n  parameters:\n    tags: not-these\ntags:\n  nofailover: false\n  noloadbalance: false # drained by pgha\n  nosync: false\n";

    #[test]
    fn the_tags_line_is_rewritten_and_nothing_else() {
        let edited = set_tag(LAB, "noloadbalance", true).unwrap().unwrap();
        assert_eq!(
            edited,
            LAB.replace(
                "noloadbalance: false # drained",
                "noloadbalance: true # drained"
            )
        );
        assert_eq!(
            set_tag(&edited, "noloadbalance", true),
            Ok(None),
            "already set"
        );
    }

    #[test]
    fn a_missing_tag_or_tags_block_is_added() {
        let without = LAB.replace("  noloadbalance: false # drained by pgha\n", "");
        let edited = set_tag(&without, "noloadbalance", true).unwrap().unwrap();
        assert!(edited.contains("tags:\n  noloadbalance: true\n  nofailover: false\n"));
        let bare = "scope: demo\nname: node3";
        assert_eq!(
            set_tag(bare, "noloadbalance", true).unwrap().unwrap(),
            "scope: demo\nname: node3\ntags:\n  noloadbalance: true\n"
        );
        let empty = "scope: demo\ntags: {}\n";
        assert_eq!(
            set_tag(empty, "noloadbalance", true).unwrap().unwrap(),
            "scope: demo\ntags:\n  noloadbalance: true\n"
        );
    }

    #[test]
    fn what_cannot_be_edited_safely_is_refused() {
        assert!(matches!(
            set_tag("tags: {nofailover: true}\n", "noloadbalance", true),
            Err(ConfigEditError::InlineTags(_))
        ));
        assert!(matches!(
            set_tag("scope: [unclosed\n", "noloadbalance", true),
            Err(ConfigEditError::Unreadable(_))
        ));
        assert_eq!(
            set_tag("- a\n- b\n", "noloadbalance", true),
            Err(ConfigEditError::NotAMapping)
        );
        assert_eq!(
            set_tag("scope: d\u{fffd}mo\n", "noloadbalance", true),
            Err(ConfigEditError::NotText)
        );
        // A tab-indented or otherwise surprising block: the parse check refuses it.
        let odd = "tags:\n    nofailover: false\n  noloadbalance: false\n";
        assert!(set_tag(odd, "noloadbalance", true).is_err());
    }
}
