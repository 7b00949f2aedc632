//! Man pages and shell completions from a binary's clap definition, for
//! packages (feature `cli-docs`): `aegis-web` and `aegis-report` write their
//! own with the hidden `generate-docs DIR` command, `aegis` with the separate
//! `aegis-docs DIR`, so that they always match the flags.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

use crate::error::{Error, Result};

/// Writes `DIR/man/NAME[-SUB…].1` for the command and every visible
/// subcommand, and `DIR/completions/{bash/NAME,zsh/_NAME,fish/NAME.fish}`
/// (the names each shell looks for); returns the files.
pub fn generate(mut cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    cmd.build();
    let name = cmd.get_name().to_owned();
    let mut written = Vec::new();
    let man = dir.join("man");
    std::fs::create_dir_all(&man)
        .map_err(|e| Error::io(format!("cannot create {}", man.display()), e))?;
    man_pages(&cmd, &name, &man, &mut written)?;
    for (shell, file) in [
        (Shell::Bash, format!("bash/{name}")),
        (Shell::Zsh, format!("zsh/_{name}")),
        (Shell::Fish, format!("fish/{name}.fish")),
    ] {
        let path = dir.join("completions").join(file);
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
        let mut out = create(&path)?;
        clap_complete::generate(shell, &mut cmd, &name, &mut out);
        written.push(path);
    }
    Ok(written)
}

/// [`generate`], saying on standard output what it wrote.
pub fn write(cmd: clap::Command, dir: &Path) -> Result<()> {
    for file in generate(cmd, dir)? {
        println!("wrote {}", file.display());
    }
    Ok(())
}

fn man_pages(
    cmd: &clap::Command,
    page: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let path = dir.join(format!("{page}.1"));
    let mut out = create(&path)?;
    // clap names commands with `&'static str` (its `string` feature would
    // change that for every binary, the ban path's included): a page name
    // lives as long as this one-shot command anyway.
    let name: &'static str = Box::leak(page.to_owned().into_boxed_str());
    clap_mangen::Man::new(cmd.clone().name(name))
        .render(&mut out)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    written.push(path);
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        man_pages(sub, &format!("{page}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}
