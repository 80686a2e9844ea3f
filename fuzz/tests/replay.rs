//! Every committed seed and regression input, through its target, on
//! stable Rust: a crash once found and fixed stays fixed.

use std::path::Path;

#[test]
fn every_seed_and_regression_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ran = 0;
    for (name, target) in aegis_fuzz::TARGETS {
        let mut seeds = 0;
        for dir in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("entry").path();
                let data = std::fs::read(&path).expect("input");
                let caught = std::panic::catch_unwind(|| target(&data));
                assert!(caught.is_ok(), "{name}: {} fails", path.display());
                seeds += usize::from(dir == "seeds");
                ran += 1;
            }
        }
        assert!(seeds > 0, "{name} has no seed in seeds/{name}");
    }
    eprintln!("{ran} inputs replayed");
}
