//! Links `aegis` for a fast start on Linux: at a fixed address (no PIE), and
//! without libgcc_s.
//!
//! fail2ban starts `aegis ban` for every ban, under its one global lock. A
//! position-independent executable of this size spends about a millisecond at each
//! start applying some 44,000 relocations, writing to 300 pages; at a fixed address
//! there are none. Shared libraries, heap and stack stay randomised.
//!
//! Loading libgcc_s (for unwinding) runs its CPU probe, whose `cpuid`
//! instructions trap to the hypervisor in a virtual machine: 0.18 ms of each
//! `aegis ban` (2.39 -> 2.21 ms, spool on tmpfs, `perf stat -r 300`) on the
//! 2-core VM the benchmarks run on. Its static part, libgcc_eh,
//! unwinds the same; linked ahead of std's `-lgcc_s`, it leaves libgcc_s
//! unneeded, and `--as-needed` drops it.

fn main() {
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux {
        println!("cargo:rustc-link-arg-bin=aegis=-no-pie");
    }
    let gnu = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|env| env == "gnu");
    if linux && gnu {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}
