//! Rendering: a pure function from a digest to a subject, a text part, an HTML part
//! and the chart. Users can override either template.

use std::path::Path;

use serde_json::json;
use tera::{Context, Tera};

use crate::digest::Digest;
use crate::error::ReportError;

const TEXT: &str = include_str!("templates/report.txt");
const HTML: &str = include_str!("templates/report.html");

/// A rendered report.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The subject line, with the host name.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part; it shows the chart as `cid:chart`.
    pub html: String,
    /// The chart, PNG.
    pub chart: Vec<u8>,
}

/// The built-in templates, or `report.txt` / `report.html` from `dir` where present.
pub struct Templates(Tera);

impl Templates {
    /// Loads the templates, overriding the built-in ones with files in `dir`.
    pub fn load(dir: Option<&Path>) -> Result<Self, ReportError> {
        let mut tera = Tera::default();
        // Tera escapes templates named *.html: every stored value in the HTML part.
        for (name, builtin) in [("report.txt", TEXT), ("report.html", HTML)] {
            let body = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| {
                    ReportError::Config(format!("cannot read {}: {e}", path.display()))
                })?,
                None => builtin.to_owned(),
            };
            tera.add_raw_template(name, &body)
                .map_err(|e| ReportError::Template(format!("{name}: {}", chain(&e))))?;
        }
        Ok(Templates(tera))
    }

    /// Renders `digest`. Stored values (jail and host names, AS organisations) are
    /// attacker-influenced: the HTML part escapes every one of them.
    pub fn render(&self, digest: &Digest) -> Result<Rendered, ReportError> {
        let mut context =
            Context::from_serialize(digest).map_err(|e| ReportError::Template(chain(&e)))?;
        let axes = crate::chart::Axes::of(&digest.bars, digest.period.hourly(), &digest.time_zone);
        context.insert("period_hourly", &digest.period.hourly());
        context.insert("chart", &axes);
        let render = |name: &str| {
            self.0
                .render(name, &context)
                .map_err(|e| ReportError::Template(format!("{name}: {}", chain(&e))))
        };
        let subject = if digest.quiet() {
            format!(
                "[Aegis] {}: no bans on {}",
                digest.hostname, digest.period.label
            )
        } else {
            format!(
                "[Aegis] {}: {} bans from {} IPs on {}",
                digest.hostname, digest.totals.bans, digest.totals.unique_ips, digest.period.label
            )
        };
        Ok(Rendered {
            subject,
            text: render("report.txt")?,
            html: render("report.html")?,
            chart: crate::chart::png(&digest.bars, &axes)?,
        })
    }
}

/// A JSON view of the digest, for `--json`.
pub fn json(digest: &Digest) -> serde_json::Value {
    json!({ "quiet": digest.quiet(), "digest": digest })
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
