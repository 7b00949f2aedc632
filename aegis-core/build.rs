//! `AEGIS_COMMIT`: the commit a binary was built from, for `--version`. Taken
//! from `AEGIS_COMMIT` in the environment (builds from a tarball), else from
//! git when this crate sits in the Aegis checkout itself, else "unknown".

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=AEGIS_COMMIT");
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = crate_dir.parent().unwrap_or(crate_dir);
    let commit = std::env::var("AEGIS_COMMIT").ok().or_else(|| {
        // Only our own checkout: an embedder's repository says nothing of this crate.
        let top = git(crate_dir, &["rev-parse", "--show-toplevel"])?;
        if Path::new(&top).canonicalize().ok()? != workspace.canonicalize().ok()? {
            return None;
        }
        for file in ["HEAD", "packed-refs"] {
            if let Some(path) = git(crate_dir, &["rev-parse", "--git-path", file]) {
                println!("cargo:rerun-if-changed={}", crate_dir.join(path).display());
            }
        }
        if let Some(branch) = git(crate_dir, &["symbolic-ref", "-q", "HEAD"]) {
            if let Some(path) = git(crate_dir, &["rev-parse", "--git-path", &branch]) {
                println!("cargo:rerun-if-changed={}", crate_dir.join(path).display());
            }
        }
        git(crate_dir, &["rev-parse", "--short=12", "HEAD"])
    });
    println!(
        "cargo:rustc-env=AEGIS_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
}
