//! Hostile text for the property tests of every parser that reads what an
//! attacker can reach: seeded, so a failure reproduces, and as many cases as
//! `AEGIS_FUZZ_CASES` asks (`scripts/fuzz` asks a million; tests a few thousand).

use fastrand::Rng;

/// How many generated inputs a property test tries.
pub fn cases() -> usize {
    std::env::var("AEGIS_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000)
}

/// Characters that break parsers: separators, quotes, controls, NUL, bytes of
/// other scripts, the replacement character, a right-to-left override.
const NASTY: &[char] = &[
    '\0', '\t', '\n', '\r', '\u{1b}', '\u{7f}', ' ', ':', '.', '/', '[', ']', '"', '\'', '%', '&',
    '=', '+', '-', '@', ',', ';', '<', '>', '\\', 'é', 'ß', '中', '\u{FFFD}', '\u{202E}', '🙂',
];

/// One hostile variant of a sample: cut, spliced, repeated, with nasty
/// characters inserted or replacing others, or random text altogether.
pub fn mutate(rng: &mut Rng, samples: &[&str]) -> String {
    let sample = samples[rng.usize(..samples.len())];
    let mut chars: Vec<char> = sample.chars().collect();
    for _ in 0..rng.usize(1..4) {
        match rng.u8(..8) {
            0 if !chars.is_empty() => {
                let at = rng.usize(..chars.len());
                chars.truncate(at);
            }
            1 => {
                let at = rng.usize(..=chars.len());
                chars.insert(at, NASTY[rng.usize(..NASTY.len())]);
            }
            2 if !chars.is_empty() => {
                let at = rng.usize(..chars.len());
                chars[at] = NASTY[rng.usize(..NASTY.len())];
            }
            3 => {
                let other = samples[rng.usize(..samples.len())];
                let at = rng.usize(..=chars.len());
                chars.splice(at..at, other.chars());
            }
            4 if !chars.is_empty() && chars.len() < 4096 => {
                let times = rng.usize(2..64);
                chars = chars.repeat(times);
            }
            5 => {
                chars = (0..rng.usize(..64))
                    .map(|_| char::from_u32(rng.u32(..0x11_0000)).unwrap_or('\u{FFFD}'))
                    .collect();
            }
            6 if !chars.is_empty() => {
                let at = rng.usize(..chars.len());
                chars[at] = char::from(rng.u8(0x20..0x7f));
            }
            _ => chars.push(NASTY[rng.usize(..NASTY.len())]),
        }
    }
    chars.into_iter().collect()
}

/// Runs `check` on `cases()` mutations of `samples` and says how many it ran.
pub fn run(what: &str, seed: u64, samples: &[&str], mut check: impl FnMut(&str)) {
    let mut rng = Rng::with_seed(seed);
    let n = cases();
    for _ in 0..n {
        check(&mutate(&mut rng, samples));
    }
    println!("fuzz {what}: {n} inputs, no panic");
}
