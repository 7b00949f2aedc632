//! The bars chart, as a PNG that mail clients show inline.

use plotters::prelude::*;

use crate::digest::Bar;
use crate::error::ReportError;

/// Chart size in pixels.
pub const WIDTH: u32 = 600;
/// Chart height in pixels.
pub const HEIGHT: u32 = 200;

/// A bar per day (or hour); labels and numbers are in the text beside it.
pub fn png(bars: &[Bar]) -> Result<Vec<u8>, ReportError> {
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        let draw = |e: DrawingAreaErrorKind<_>| ReportError::Template(format!("chart: {e}"));
        area.fill(&WHITE).map_err(draw)?;
        let peak = bars.iter().map(|b| b.bans).max().unwrap_or(0).max(1);
        let n = bars.len().max(1) as u32;
        let slot = WIDTH / n;
        let gap = (slot / 5).max(1);
        let base = HEIGHT as i32 - 1;
        area.draw(&PathElement::new(
            vec![(0, base), (WIDTH as i32, base)],
            RGBColor(209, 213, 219),
        ))
        .map_err(draw)?;
        for (i, bar) in bars.iter().enumerate() {
            let height = ((bar.bans as f64 / peak as f64) * (HEIGHT as f64 - 10.0)).round() as i32;
            let x0 = (i as u32 * slot + gap / 2) as i32;
            let x1 = ((i as u32 + 1) * slot - gap / 2) as i32;
            area.draw(&Rectangle::new(
                [(x0, base - height), (x1, base)],
                RGBColor(220, 38, 38).filled(),
            ))
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
