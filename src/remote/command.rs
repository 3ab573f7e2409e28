//! Commands for a host, as data: a program and its arguments, each argument validated where it
//! comes from outside (names, paths) and shell-quoted when rendered. The rendered line is exactly
//! what is sent, so a plan shows the very bytes that will run. Work that needs a shell (a loop,
//! a guard, a pipe) is a `Script`: fixed text whose values arrive as positional parameters, so
//! no value is ever part of the script's text and quoting happens exactly once, here.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One command to run on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCommand {
    /// Run it through `sudo -n` (never prompting: a prompt would hang a runbook).
    pub sudo: bool,
    /// Run it as this OS user (`sudo -n -u USER`), e.g. the database's.
    pub as_user: Option<String>,
    pub program: String,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeValue {
    #[error("{what} {value:?} is not allowed: {reason}")]
    Rejected {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl HostCommand {
    pub fn new(program: &str) -> Self {
        HostCommand {
            sudo: false,
            as_user: None,
            program: program.into(),
            args: Vec::new(),
        }
    }

    #[must_use]
    pub fn arg(mut self, value: impl Into<String>) -> Self {
        self.args.push(value.into());
        self
    }

    #[must_use]
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, values: I) -> Self {
        self.args.extend(values.into_iter().map(Into::into));
        self
    }

    #[must_use]
    pub fn sudo(mut self, sudo: bool) -> Self {
        self.sudo = sudo;
        self
    }

    #[must_use]
    pub fn as_user(mut self, user: Option<String>) -> Self {
        self.as_user = user;
        self
    }

    /// The command line as sent to the remote shell: every word quoted where needed.
    pub fn shell_line(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        if self.sudo || self.as_user.is_some() {
            words.extend(["sudo".to_string(), "-n".to_string()]);
            if let Some(user) = &self.as_user {
                words.extend(["-u".to_string(), quote(user)]);
            }
        }
        words.push(quote(&self.program));
        words.extend(self.args.iter().map(|arg| quote(arg)));
        words.join(" ")
    }
}

impl fmt::Display for HostCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shell_line())
    }
}

/// A shell script whose text is fixed at compile time and whose values arrive as positional
/// parameters (`"$1"`, `"$@"`): `sh -c SCRIPT pgha VALUE…`. The text is built only from
/// `&'static str` pieces, so a value from an inventory, a flag or the network cannot become
/// shell syntax however it is spelt; each value is one quoted word of the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    text: Vec<&'static str>,
    values: Vec<String>,
}

impl Script {
    /// `pieces` are joined with `; ` (each a complete shell command or compound).
    pub fn new(pieces: &[&'static str]) -> Self {
        Script {
            text: pieces.to_vec(),
            values: Vec::new(),
        }
    }

    /// The next positional parameter.
    #[must_use]
    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.values.push(value.into());
        self
    }

    #[must_use]
    pub fn values<I: IntoIterator<Item = S>, S: Into<String>>(mut self, values: I) -> Self {
        self.values.extend(values.into_iter().map(Into::into));
        self
    }

    /// `sh -c TEXT pgha VALUES…`: `pgha` is `$0`, the name the shell gives its errors.
    pub fn command(self) -> HostCommand {
        HostCommand::new("sh")
            .arg("-c")
            .arg(self.text.join("; "))
            .arg("pgha")
            .args(self.values)
    }
}

/// POSIX shell quoting: plain words stay plain, anything else goes in single quotes with
/// embedded single quotes written as `'\''`. Inert for every byte but NUL, which is refused
/// before any command is built (see `checked_path`).
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "_-./:=@%+,".contains(character));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// An absolute path without NUL, newline, `..` or `.` components: what a runbook may name as a
/// file or directory on a host.
pub fn checked_path(what: &'static str, path: &str) -> Result<String, UnsafeValue> {
    let reject = |reason| UnsafeValue::Rejected {
        what,
        value: path.into(),
        reason,
    };
    if !path.starts_with('/') {
        return Err(reject("it must be an absolute path"));
    }
    if path.contains(['\0', '\n', '\r']) {
        return Err(reject("it contains a control character"));
    }
    if path
        .split('/')
        .any(|component| component == ".." || component == ".")
    {
        return Err(reject("it contains . or .. components"));
    }
    if path.trim_end_matches('/').is_empty() {
        return Err(reject("it is the root directory"));
    }
    Ok(path.trim_end_matches('/').to_string())
}

/// A systemd unit, Kubernetes object, OS user or member name: the safe name alphabet.
pub fn checked_name(what: &'static str, name: &str) -> Result<String, UnsafeValue> {
    crate::names::check_name(name).map_err(|_| UnsafeValue::Rejected {
        what,
        value: name.into(),
        reason: "only letters, digits, '.', '_' and '-' are allowed",
    })?;
    Ok(name.into())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn plain_words_stay_plain_and_the_rest_is_quoted() {
        assert_eq!(quote("patroni"), "patroni");
        assert_eq!(quote("/var/lib/pgha/lab"), "/var/lib/pgha/lab");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(quote("a;b"), "'a;b'");
    }

    #[test]
    fn sudo_and_users_render_before_the_program() {
        let command = HostCommand::new("systemctl")
            .args(["stop", "patroni"])
            .sudo(true);
        assert_eq!(command.shell_line(), "sudo -n systemctl stop patroni");
        let command = HostCommand::new("pg_isready").as_user(Some("postgres".into()));
        assert_eq!(command.shell_line(), "sudo -n -u postgres pg_isready");
    }

    #[test]
    fn paths_must_be_plain_absolute_paths() {
        assert_eq!(
            checked_path("data directory", "/var/lib/pg/data/").unwrap(),
            "/var/lib/pg/data"
        );
        for bad in [
            "relative/path",
            "/",
            "/var/../etc",
            "/a/./b",
            "/a\nb",
            "/a\0b",
            "",
        ] {
            assert!(
                checked_path("data directory", bad).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "a b",
            "x;rm -rf /",
            "$(id)",
            "`id`",
            "-rf",
            "a\nb",
            "'",
            "\"q\"",
        ] {
            assert!(checked_name("unit", bad).is_err(), "{bad:?} accepted");
        }
    }

    /// Whatever the word, a POSIX shell reads back exactly that word.
    fn shell_echo(word: &str) -> String {
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(word)))
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    }

    #[test]
    fn quoted_words_are_inert_in_a_real_shell() {
        for word in [
            "a b",
            "it's",
            "$(touch /tmp/pgha-pwned)",
            "`id`",
            "a;b",
            "x\ny",
            "$HOME",
            "*",
            "~",
            "'\"'",
        ] {
            assert_eq!(shell_echo(word), word);
        }
        assert!(!std::path::Path::new("/tmp/pgha-pwned").exists());
    }

    #[test]
    fn script_values_are_positional_parameters_never_text() {
        let script = Script::new(&["set -eu", r#"printf '%s|' "$@""#])
            .value("$(touch /tmp/pgha-pwned-script)")
            .values(["a b", "'"]);
        let command = script.command();
        assert_eq!(command.args[1], r#"set -eu; printf '%s|' "$@""#);
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command.shell_line())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            "$(touch /tmp/pgha-pwned-script)|a b|'|"
        );
        assert!(!std::path::Path::new("/tmp/pgha-pwned-script").exists());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_word_without_nul_survives_the_shell(word in "[^\\x00]{0,40}") {
            prop_assert_eq!(shell_echo(&word), word);
        }
    }
}
