//! Patroni from PyPI, one virtualenv per release, shared by every lab on the machine. Built on
//! Debian's `/usr/bin/python3` because an interpreter under /root cannot be run by `postgres`.
//! Old releases need other extras: 2.x talks to PostgreSQL through psycopg2, 3.0 has no
//! `psycopg3` extra, and patronictl before 4.0 breaks with ydiff newer than 1.2.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::LabError;
use crate::patroni::Version;

const SYSTEM_PYTHON: &str = "/usr/bin/python3";
const COMPLETE_MARKER: &str = ".pgha-complete";

/// Where virtualenvs live: `PGHA_VENV_DIR`, else beside the default lab.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PGHA_VENV_DIR") {
        return PathBuf::from(dir);
    }
    super::state_root().join("venv")
}

pub(crate) fn patroni_binary(venv: &Path) -> PathBuf {
    venv.join("bin").join("patroni")
}

/// The PyPI requirements for one Patroni release.
pub(crate) fn requirements(version: Version) -> Vec<String> {
    let mut requirements = vec![format!("patroni[etcd3,consul]=={version}")];
    if version.major < 3 {
        requirements.push("psycopg2-binary".into());
    } else {
        requirements.push("psycopg[binary]".into());
    }
    if version.major < 4 {
        requirements.push("ydiff==1.2".into());
    }
    requirements
}

/// The virtualenv for `version`, installing it on first use.
pub(crate) fn ensure(version: Version) -> Result<PathBuf, LabError> {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).map_err(|error| LabError::io("create", &cache, &error))?;
    let venv = cache.join(format!("patroni-{version}"));
    let wanted = marker_text(version);
    if marker(&venv).as_deref() == Some(wanted.as_str()) {
        return Ok(venv);
    }
    // Two labs (or two test processes) may ask for the same release at once: one installs.
    let lock_path = cache.join(format!("patroni-{version}.lock"));
    let lock =
        File::create(&lock_path).map_err(|error| LabError::io("create", &lock_path, &error))?;
    lock.lock()
        .map_err(|error| LabError::io("lock", &lock_path, &error))?;
    match marker(&venv) {
        Some(text) if text == wanted => return Ok(venv),
        // Built by an older pgha with fewer extras: add what is missing, keep the rest.
        Some(_) => {
            eprintln!(
                "lab: adding requirements to Patroni {version} in {}",
                venv.display()
            );
            pip_install(&venv, version)?;
            return write_marker(&venv, &wanted);
        }
        None => {}
    }
    if !Path::new(SYSTEM_PYTHON).is_file() {
        return Err(LabError::Missing {
            what: SYSTEM_PYTHON.into(),
            hint: "install python3-venv with scripts/install-deps.sh".into(),
        });
    }
    if venv.exists() {
        // A half-built venv from an interrupted install: start over.
        std::fs::remove_dir_all(&venv).map_err(|error| LabError::io("remove", &venv, &error))?;
    }
    eprintln!(
        "lab: installing Patroni {version} from PyPI into {}",
        venv.display()
    );
    run(
        Command::new(SYSTEM_PYTHON).args(["-m", "venv"]).arg(&venv),
        "create the virtualenv",
    )?;
    pip_install(&venv, version)?;
    write_marker(&venv, &wanted)
}

/// What the marker of a complete venv says: the requirements it was built with.
fn marker_text(version: Version) -> String {
    requirements(version).join("\n") + "\n"
}

fn marker(venv: &Path) -> Option<String> {
    std::fs::read_to_string(venv.join(COMPLETE_MARKER)).ok()
}

fn write_marker(venv: &Path, text: &str) -> Result<PathBuf, LabError> {
    std::fs::write(venv.join(COMPLETE_MARKER), text)
        .map_err(|error| LabError::io("write", venv, &error))?;
    Ok(venv.to_path_buf())
}

fn pip_install(venv: &Path, version: Version) -> Result<(), LabError> {
    run(
        Command::new(venv.join("bin").join("pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(requirements(version)),
        &format!("pip install Patroni {version}"),
    )
}

fn run(command: &mut Command, what: &str) -> Result<(), LabError> {
    let output = command
        .output()
        .map_err(|error| LabError::io(what, Path::new(SYSTEM_PYTHON), &error))?;
    if output.status.success() {
        return Ok(());
    }
    Err(LabError::ToolFailed {
        what: what.to_string(),
        output: last_lines(&String::from_utf8_lossy(&output.stderr), 8),
    })
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_releases_get_the_drivers_they_support() {
        assert_eq!(
            requirements(Version::new(2, 1, 7)),
            [
                "patroni[etcd3,consul]==2.1.7",
                "psycopg2-binary",
                "ydiff==1.2"
            ]
        );
        assert_eq!(
            requirements(Version::new(3, 0, 4)),
            [
                "patroni[etcd3,consul]==3.0.4",
                "psycopg[binary]",
                "ydiff==1.2"
            ]
        );
        assert_eq!(
            requirements(Version::new(4, 1, 5)),
            ["patroni[etcd3,consul]==4.1.5", "psycopg[binary]"]
        );
    }
}
