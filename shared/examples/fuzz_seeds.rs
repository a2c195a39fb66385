//! Writes the fuzz targets' seeds into `fuzz/corpus/<target>/` (or the folder given), as
//! `cargo fuzz run` expects them. `scripts/fuzz` runs it before fuzzing.
//!
//! Usage: `cargo run -p imghost --example fuzz_seeds -- [CORPUS_DIR] [PHOTOS_DIR]`

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let corpus = args.next().map_or_else(|| PathBuf::from("fuzz/corpus"), PathBuf::from);
    let photos = args.next().map_or_else(|| PathBuf::from("../shared/testdata/photos"), PathBuf::from);
    for (name, _) in imghost::fuzzing::TARGETS {
        let dir = corpus.join(name);
        std::fs::create_dir_all(&dir)?;
        let seeds = imghost::fuzzing::seeds::for_target(name, &photos);
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:03}")), seed)?;
        }
        println!("{name}: {} seeds in {}", seeds.len(), dir.display());
    }
    Ok(())
}
