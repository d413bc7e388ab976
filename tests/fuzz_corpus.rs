//! Replays the committed fuzz corpus (fuzz/corpus/<target>/) through the
//! same functions the cargo-fuzz targets call, on stable Rust: an input
//! that once crashed the server's parsers is kept in the corpus and must
//! keep passing here, with or without cargo-fuzz installed.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} panicked", path.display());
        inputs += 1;
    }
    assert!(inputs > 0, "{target}: the corpus is empty");
}

#[test]
fn ws_frames_corpus_replays() {
    replay("ws_frames", harness::ws_frames);
}

#[test]
fn config_corpus_replays() {
    replay("config", harness::config);
}

#[test]
fn json_bodies_corpus_replays() {
    replay("json_bodies", harness::json_bodies);
}

#[test]
fn multipart_corpus_replays() {
    replay("multipart", harness::multipart);
}
