//! `aegis fail2ban install`: puts the action file where fail2ban finds it.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// The action file, also shipped as `contrib/fail2ban/action.d/aegis.conf`.
pub const ACTION: &str = include_str!("../contrib/aegis.conf");

/// Writes `aegis.conf` into `dir` (or shows what it would do).
pub fn install(dir: &Path, dry_run: bool, force: bool) -> Result<()> {
    let target = dir.join("aegis.conf");
    let existing = std::fs::read_to_string(&target).ok();
    if existing.as_deref() == Some(ACTION) {
        println!("{} is already up to date", target.display());
        return Ok(());
    }
    if existing.is_some() && !force && !dry_run {
        bail!(aegis_core::Error::Invalid(format!(
            "{} exists and differs: pass --force to replace it (or --dry-run to see the new file)",
            target.display()
        )));
    }
    if dry_run {
        println!("would write {}:\n\n{ACTION}", target.display());
        return Ok(());
    }
    if !dir.is_dir() {
        bail!(aegis_core::Error::Invalid(format!(
            "{} does not exist: is fail2ban installed? (pass --dir for another location)",
            dir.display()
        )));
    }
    std::fs::write(&target, ACTION)
        .with_context(|| format!("cannot write {}", target.display()))?;
    println!(
        "wrote {}\nnext: add `aegis` to a jail's actions (see the comments in the file), then `fail2ban-client reload`",
        target.display()
    );
    Ok(())
}
