//! The safe alphabets: what a name (member, cluster, environment, unit, user), a host, an ssh
//! login or a jump host may be spelt with. These values end up in URLs, file names, ssh's
//! command line and shell commands, so each is checked where it enters pgha, against the
//! smallest alphabet that serves, and never starts with `-` (a command reads that as an option).

/// Letters, digits, `.`, `_` and `-`, at most 128 of them, not starting with `-` (a command
/// would read it as an option).
fn plain_word(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && !text.starts_with('-')
        && text
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "._-".contains(character))
}

/// Names end up in URLs, file names and shell commands: keep them to a safe alphabet.
pub fn check_name(name: &str) -> Result<(), String> {
    if plain_word(name) && !name.starts_with('.') {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name (letters, digits, '.', '_' and '-'; not starting with '-' or '.')"
        ))
    }
}

/// A member's host: a DNS name or an IP address. It is ssh's destination argument, a URL's host
/// and PostgreSQL's, so no spaces or shell metacharacters, and no leading `-`: ssh reads an
/// argument starting with one as an option (`-oProxyCommand=…` runs a local command).
pub fn check_host(host: &str) -> Result<(), String> {
    if host.starts_with('-') {
        return Err(format!(
            "{host:?} starts with '-': ssh would read it as an option"
        ));
    }
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || ".-:_[]".contains(character));
    if valid {
        Ok(())
    } else {
        Err(format!("{host:?} is not a host name or IP address"))
    }
}

/// A login name for `ssh -l`. ssh expands it into `%r` of the operator's `ssh_config`
/// (`ProxyCommand`, `Match exec`, run by a shell), so only the plain alphabet.
pub fn check_ssh_user(user: &str) -> Result<(), String> {
    if plain_word(user) {
        Ok(())
    } else {
        Err(format!(
            "{user:?} is not a user name (letters, digits, '.', '_' and '-'; not starting with '-')"
        ))
    }
}

/// ssh's `-J`: `[user@]host[:port]`, or several such hops separated by commas. OpenSSH turns it
/// into a `ProxyCommand` that a shell runs, so each part keeps to its plain alphabet.
pub fn check_jump_host(jump: &str) -> Result<(), String> {
    let refuse = |detail: String| format!("{jump:?} is not [user@]host[:port]: {detail}");
    if jump.is_empty() {
        return Err(refuse("it is empty".into()));
    }
    for hop in jump.split(',') {
        let (user, address) = match hop.split_once('@') {
            Some((user, address)) => (Some(user), address),
            None => (None, hop),
        };
        if let Some(user) = user {
            check_ssh_user(user).map_err(refuse)?;
        }
        let (host, port) = split_port(address).map_err(refuse)?;
        check_host(host).map_err(refuse)?;
        if let Some(port) = port {
            let valid = !port.is_empty()
                && port.chars().all(|digit| digit.is_ascii_digit())
                && port.parse::<u16>().is_ok_and(|port| port > 0);
            if !valid {
                return Err(refuse(format!("{port:?} is not a port")));
            }
        }
    }
    Ok(())
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; a bare IPv6 address is ambiguous with a port.
fn split_port(address: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(bracketed) = address.strip_prefix('[') {
        let (host, rest) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("{address:?} opens a '[' it does not close"))?;
        return match rest {
            "" => Ok((host, None)),
            _ => match rest.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("{rest:?} follows ']'")),
            },
        };
    }
    if address.matches(':').count() > 1 {
        return Err(format!("write the IPv6 address {address:?} in brackets"));
    }
    Ok(address
        .split_once(':')
        .map_or((address, None), |(host, port)| (host, Some(port))))
}
