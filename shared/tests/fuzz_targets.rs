//! The fuzz targets of `imghost::fuzzing`, run on stable for a bounded number of cases: seeds
//! (the test photos and generated files of every format, with metadata; URLs, queries, bodies)
//! mutated by a seeded generator, so every run tries the same inputs and a failure reproduces.
//! The coverage-guided runs are in `fuzz/` (see docs/fuzzing.md).
//!
//! A failing input is written to `target/tmp/fuzz-failures/` before the test fails, ready to
//! replay with `cargo fuzz run <target> <file>`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use imghost::fuzzing::{self, alloc::CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// A small, fast, seeded generator (xorshift64*): the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// One to four of the mutations that break parsers: bit flips, interesting values, length
/// fields set to edge values, deleted, duplicated and inserted ranges, truncation, splices.
fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    const INTERESTING: [u8; 8] = [0, 1, 0x7F, 0x80, 0xFF, 0xFE, 0x10, 0x40];
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len().max(1);
        let at = rng.below(len);
        let last = out.len().saturating_sub(1);
        match rng.below(9) {
            0 if !out.is_empty() => out[at.min(last)] ^= 1 << rng.below(8),
            1 if !out.is_empty() => out[at.min(last)] = INTERESTING[rng.below(8)],
            2 if out.len() >= 4 => {
                let at = at.min(out.len() - 4);
                let value: u32 = [0, 1, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, rng.next() as u32][rng.below(6)];
                let bytes = if rng.below(2) == 0 { value.to_be_bytes() } else { value.to_le_bytes() };
                let width = [1, 2, 4][rng.below(3)];
                out[at..at + width].copy_from_slice(&bytes[4 - width..]);
            }
            3 if !out.is_empty() => {
                let end = (at + 1 + rng.below(64)).min(out.len());
                out.drain(at.min(end)..end);
            }
            4 if !out.is_empty() => {
                let end = (at + 1 + rng.below(256)).min(out.len());
                let copy = out[at.min(end)..end].to_vec();
                let to = rng.below(out.len());
                out.splice(to..to, copy);
            }
            5 => {
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, bytes);
            }
            6 => out.truncate(at),
            7 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(512)).min(other.len());
                let to = rng.below(out.len() + 1);
                out.splice(to..to, other[from..end].iter().copied());
            }
            _ => {}
        }
    }
    out
}

fn failures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp/fuzz-failures")
}

/// Runs `target` on every seed and on `cases` mutations of them; on a failure, saves the input
/// and fails with its path.
fn drive(name: &str, target: fn(&[u8]), seeds: &[Vec<u8>], cases: usize, rng_seed: u64) {
    let mut rng = Rng(rng_seed);
    let inputs = seeds.iter().cloned().chain((0..cases).map(|_| {
        let seed = &seeds[rng.below(seeds.len())];
        mutate(&mut rng, seed, seeds)
    }));
    for (i, input) in inputs.enumerate() {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            let dir = failures_dir();
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{name}-{i}"));
            std::fs::write(&path, &input).unwrap();
            let why =
                panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("{name}: case {i} failed ({}); input saved to {}", why.unwrap_or_default(), path.display());
        }
    }
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    fuzzing::seeds::for_target(target, &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/photos"))
}

/// Cases per target: enough to cross every branch the seeds lead to, few enough for CI.
fn cases(target: &str) -> usize {
    match target {
        "inspect" | "exif" => 6000,
        _ => 4000,
    }
}

#[test]
fn the_counting_allocator_is_installed() {
    // Without it every memory bound below would pass without measuring anything.
    assert!(fuzzing::alloc::installed());
}

#[test]
fn every_target_keeps_its_invariants_over_seeds_and_mutations() {
    for (i, (name, target)) in fuzzing::TARGETS.into_iter().enumerate() {
        let seeds = seeds(name);
        assert!(!seeds.is_empty(), "{name} has no seeds");
        drive(name, target, &seeds, cases(name), 0x1A2B_3C4D + i as u64);
    }
}

/// Inputs that once broke an invariant (found by `cargo fuzz`, see docs/fuzzing.md), kept as
/// `fuzz-regressions/<target>/<what it was>`: each must now pass its target.
#[test]
fn past_findings_stay_fixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut checked = 0;
    for (name, target) in fuzzing::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
                panic!("{name}: {} breaks an invariant again", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no regression inputs found in {}", root.display());
}

#[test]
fn the_image_seeds_cover_every_format() {
    let formats: std::collections::BTreeSet<_> =
        seeds("inspect").iter().filter_map(|s| imghost::media::sniff(s)).map(|f| f.name()).collect();
    assert_eq!(formats.into_iter().collect::<Vec<_>>(), ["gif", "jpeg", "png", "webp"]);
}

#[test]
fn a_truncated_jpeg_claiming_millions_of_pixels_is_refused_before_decoding() {
    // Given the 2 KiB progressive JPEG fuzzing found, whose frame claims 1040x14872 pixels and
    // whose first scan holds far fewer bits than blocks (it took seconds to decode).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions/inspect");
    let bomb = std::fs::read(root.join("truncated-progressive-claiming-15-megapixels.jpg")).unwrap();

    // When it is inspected, then it is refused as damaged.
    let refused = imghost::media::inspect(&bomb).map(|_| ()).unwrap_err();
    assert!(refused.to_string().contains("first scan is too short"), "{refused}");

    // And every seed JPEG, a real photo among them, still passes the same rule.
    for seed in seeds("inspect").iter().filter(|s| s.starts_with(&[0xFF, 0xD8])) {
        if let Err(e) = imghost::media::inspect(seed) {
            assert!(!e.to_string().contains("first scan is too short"), "a whole JPEG was refused: {e}");
        }
    }
}
