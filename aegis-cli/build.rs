//! Links `aegis` at a fixed address (no PIE) on Linux.
//!
//! fail2ban starts `aegis ban` for every ban, under its one global lock. A
//! position-independent executable of this size spends about a millisecond at each
//! start applying some 44,000 relocations, writing to 300 pages; at a fixed address
//! there are none. Shared libraries, heap and stack stay randomised.

fn main() {
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux {
        println!("cargo:rustc-link-arg-bin=aegis=-no-pie");
    }
}
