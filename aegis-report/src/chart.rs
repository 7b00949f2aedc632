//! The chart of bans per hour or day: a PNG that mail clients show inline,
//! drawn to a round scale, and the labels the HTML part puts around it (text,
//! not pixels: crisp in every client, read by screen readers, no font to ship).

use plotters::prelude::*;
use serde::Serialize;

use crate::digest::Bar;
use crate::error::ReportError;

/// Chart size in pixels.
pub const WIDTH: u32 = 560;
/// Chart height in pixels.
pub const HEIGHT: u32 = 200;
/// Labels under the bars, at most.
const X_LABELS: usize = 8;

// The dashboard's light theme (aegis-web's app.css): --accent, --line, --muted.
const BAR: RGBColor = RGBColor(0xb9, 0x1c, 0x1c);
const GRID: RGBColor = RGBColor(0xe2, 0xe5, 0xea);
const AXIS: RGBColor = RGBColor(0x58, 0x61, 0x70);

/// A label under the bars.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct XLabel {
    /// "14:00", "11-26".
    pub text: String,
    /// The width of the bars it names, in pixels.
    pub width: u32,
}

/// The chart's scale and labels, shared by the image and the HTML around it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Axes {
    /// What a bar is: "hour" or "day".
    pub unit: &'static str,
    /// The caption, e.g. "Bans per hour (Europe/Berlin)".
    pub title: String,
    /// The counts at the gridlines, top first: the top is a round number at
    /// least as high as the tallest bar, the bottom 0.
    pub y: [u64; 3],
    /// Labels under the bars, each under the first of `span` bars.
    pub x: Vec<XLabel>,
    /// Bars per label.
    pub span: usize,
    /// Pixels per bar.
    pub slot: u32,
    /// The image's width and height.
    pub width: u32,
    /// The image's height.
    pub height: u32,
    /// The tallest bar, for the image's text alternative.
    pub peak: String,
}

impl Axes {
    /// The axes of `bars` (hours when `hourly`) in the time zone named `tz`.
    pub fn of(bars: &[Bar], hourly: bool, tz: &str) -> Self {
        let unit = if hourly { "hour" } else { "day" };
        let tallest = bars.iter().max_by_key(|b| b.bans);
        let top = round_top(tallest.map_or(0, |b| b.bans));
        let n = bars.len().max(1);
        let span = if hourly && n <= 24 {
            3
        } else {
            n.div_ceil(X_LABELS)
        };
        let slot = WIDTH / n as u32;
        let x = bars
            .chunks(span)
            .map(|group| XLabel {
                text: short(&group[0].label, hourly),
                width: group.len() as u32 * slot,
            })
            .collect();
        Axes {
            unit,
            title: format!("Bans per {unit} ({tz})"),
            y: [top, top / 2, 0],
            x,
            span,
            slot,
            width: WIDTH,
            height: HEIGHT,
            peak: tallest.map_or("no bans".into(), |b| {
                format!("the most: {} at {}", b.bans, b.label)
            }),
        }
    }
}

/// The smallest of 2, 4, 6, 8, 10 times a power of ten at least `peak`: even,
/// so that the middle gridline is a whole number too. The dashboard's chart
/// (aegis-web's app.js) scales by the same rule.
fn round_top(peak: u64) -> u64 {
    let mut scale = 1;
    loop {
        for step in [2, 4, 6, 8, 10] {
            if step * scale >= peak {
                return step * scale;
            }
        }
        scale *= 10;
    }
}

/// "14:00" for an hour, "11-26" for a day ("2026-11-26").
fn short(label: &str, hourly: bool) -> String {
    match label.get(5..) {
        Some(rest) if !hourly && label.len() == 10 => rest.to_owned(),
        _ => label.to_owned(),
    }
}

/// The bars on `axes`' scale, with its gridlines and axis lines.
pub fn png(bars: &[Bar], axes: &Axes) -> Result<Vec<u8>, ReportError> {
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        let draw = |e: DrawingAreaErrorKind<_>| ReportError::Template(format!("chart: {e}"));
        area.fill(&WHITE).map_err(draw)?;
        let top = axes.y[0].max(1) as f64;
        let base = HEIGHT as i32 - 1;
        let y_of =
            |count: u64| base - ((count as f64 / top) * f64::from(HEIGHT - 1)).round() as i32;
        let right = (axes.slot * bars.len().max(1) as u32) as i32;
        for count in &axes.y[..2] {
            let y = y_of(*count);
            area.draw(&PathElement::new(vec![(0, y), (right, y)], GRID))
                .map_err(draw)?;
        }
        let gap = (axes.slot / 5).max(1);
        for (i, bar) in bars.iter().enumerate() {
            let x0 = (i as u32 * axes.slot + gap / 2) as i32;
            let x1 = ((i as u32 + 1) * axes.slot - gap / 2) as i32;
            if bar.bans > 0 {
                area.draw(&Rectangle::new(
                    [(x0, y_of(bar.bans)), (x1, base)],
                    BAR.filled(),
                ))
                .map_err(draw)?;
            }
        }
        // The axes: the baseline, the left edge, and a tick at each label.
        area.draw(&PathElement::new(vec![(0, base), (right, base)], AXIS))
            .map_err(draw)?;
        area.draw(&PathElement::new(vec![(0, 0), (0, base)], AXIS))
            .map_err(draw)?;
        for i in (0..bars.len()).step_by(axes.span) {
            let x = (i as u32 * axes.slot) as i32;
            area.draw(&PathElement::new(vec![(x, base - 4), (x, base)], AXIS))
                .map_err(draw)?;
        }
        area.present().map_err(draw)?;
    }
    let mut png = Vec::new();
    let image = image_rgb(pixels)?;
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| ReportError::Template(format!("chart PNG: {e}")))?;
    Ok(png)
}

fn image_rgb(pixels: Vec<u8>) -> Result<image::RgbImage, ReportError> {
    image::RgbImage::from_raw(WIDTH, HEIGHT, pixels)
        .ok_or_else(|| ReportError::Template("chart buffer has the wrong size".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(n: u64, label: impl Fn(u64) -> String) -> Vec<Bar> {
        (0..n)
            .map(|i| Bar {
                label: label(i),
                bans: i * 3,
            })
            .collect()
    }

    #[test]
    fn scales_are_round_and_labels_fit() {
        assert_eq!(
            [0, 1, 2, 3, 7, 9, 11, 37, 61, 1234].map(round_top),
            [2, 2, 2, 4, 8, 10, 20, 40, 80, 2000]
        );
        let day = Axes::of(&bars(24, |h| format!("{h:02}:00")), true, "Europe/Berlin");
        assert_eq!(day.title, "Bans per hour (Europe/Berlin)");
        assert_eq!(day.y, [80, 40, 0]);
        assert_eq!(
            day.x.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["00:00", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00"]
        );
        let month = Axes::of(&bars(30, |d| format!("2026-11-{:02}", d + 1)), false, "UTC");
        assert_eq!(month.unit, "day");
        assert_eq!(
            (month.span, month.x.len(), month.x[1].text.as_str()),
            (4, 8, "11-05")
        );
        assert_eq!(
            month.x.iter().map(|l| l.width).sum::<u32>(),
            30 * month.slot
        );
        assert!(30 * month.slot <= WIDTH);
    }
}
