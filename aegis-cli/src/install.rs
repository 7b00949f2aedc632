//! `aegis fail2ban install`: puts the action file where fail2ban finds it and,
//! with `--share`, the jail shared bans are applied in and the agent's unit.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The action file, also shipped as `contrib/fail2ban/action.d/aegis.conf`.
pub const ACTION: &str = include_str!("../contrib/aegis.conf");
/// The receive-only jail, also shipped as `contrib/fail2ban/jail.d/aegis-shared.local`.
pub const SHARED_JAIL: &str = include_str!("../contrib/aegis-shared.local");
/// The agent's systemd unit, also shipped as `contrib/systemd/aegis-agent.service`.
pub const AGENT_UNIT: &str = include_str!("../contrib/aegis-agent.service");

/// Where the Debian package puts the agent's unit.
pub const PACKAGED_AGENT_UNIT: &str = "/usr/lib/systemd/system/aegis-agent.service";

/// Where `install` writes.
pub struct Places {
    /// fail2ban's `action.d`.
    pub actions: PathBuf,
    /// With `--share`: fail2ban's `jail.d` and systemd's unit directory.
    pub share: Option<(PathBuf, PathBuf)>,
    /// The agent's unit as a package installs it: when present, no copy is
    /// written (one in `/etc/systemd/system` would hide the package's updates).
    pub packaged_unit: PathBuf,
}

/// Writes every file (or shows what it would do); a file that exists and
/// differs is replaced only with `force`.
pub fn install(places: &Places, dry_run: bool, force: bool) -> Result<()> {
    let mut files = vec![(places.actions.join("aegis.conf"), ACTION)];
    if let Some((jails, units)) = &places.share {
        files.push((jails.join("aegis-shared.local"), SHARED_JAIL));
        if places.packaged_unit.is_file() {
            println!(
                "{} comes with the package: no copy in {}",
                places.packaged_unit.display(),
                units.display()
            );
        } else {
            files.push((units.join("aegis-agent.service"), AGENT_UNIT));
        }
    }
    // Every check before any write: all of it is installed, or none.
    let mut todo = Vec::new();
    for (target, body) in &files {
        let existing = std::fs::read_to_string(target).ok();
        if existing.as_deref() == Some(*body) {
            println!("{} is already up to date", target.display());
            continue;
        }
        if existing.is_some() && !force && !dry_run {
            bail!(aegis_core::Error::Invalid(format!(
                "{} exists and differs: pass --force to replace it (or --dry-run to see the new file)",
                target.display()
            )));
        }
        let dir = target.parent().unwrap_or(Path::new("."));
        if !dry_run && !dir.is_dir() {
            bail!(aegis_core::Error::Invalid(format!(
                "{} does not exist: is fail2ban (or systemd) installed? (pass --dir, --jail-dir or --unit-dir for another location)",
                dir.display()
            )));
        }
        todo.push((target, body));
    }
    for (target, body) in todo {
        if dry_run {
            println!("would write {}:\n\n{body}", target.display());
        } else {
            std::fs::write(target, body)
                .with_context(|| format!("cannot write {}", target.display()))?;
            println!("wrote {}", target.display());
        }
    }
    if !dry_run {
        println!("next: add `aegis` to a jail's actions (see the comments in aegis.conf), then `fail2ban-client reload`");
        if places.share.is_some() {
            println!("then: `systemctl daemon-reload && systemctl enable --now aegis-agent`, and `[share] enabled = true` in /etc/aegis/aegis.toml on the hosts whose bans are shared");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_unit_is_not_copied() {
        let dir = tempfile::tempdir().unwrap();
        let sub = |name: &str| {
            let p = dir.path().join(name);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let mut places = Places {
            actions: sub("action.d"),
            share: Some((sub("jail.d"), sub("units"))),
            packaged_unit: dir.path().join("lib/aegis-agent.service"),
        };
        install(&places, false, false).unwrap();
        let copied = dir.path().join("units/aegis-agent.service");
        assert!(copied.is_file(), "no package: the unit is written");

        std::fs::remove_file(&copied).unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(&places.packaged_unit, AGENT_UNIT).unwrap();
        places.actions = sub("action2.d");
        install(&places, false, false).unwrap();
        assert!(!copied.exists(), "the package's unit is not hidden");
        assert!(dir.path().join("action2.d/aegis.conf").is_file());
    }
}
