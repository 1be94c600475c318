//! The engine's way back after it fell behind the hub (`RecvError::Lagged`): `catch_up` judges
//! each device's newest stored reading, so a crossing it never saw still fires, once.

use super::engine::Effect;
use super::service::catch_up;
use super::tests::{engine, hot, tmp_of as reading};
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::Arc;

fn fired_for(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Fire { key, value, .. } => Some(format!("{} {value:?}", key.1)),
            _ => None,
        })
        .collect()
}

#[test]
fn catch_up_judges_the_newest_stored_reading_of_each_device() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("rzmon.db")).unwrap();
    // Stored while the engine was behind: d1 crossed the threshold last, d2 went back below.
    let writer = store
        .spawn_writer(Arc::new(Metrics::default()), Default::default())
        .unwrap();
    let tx = writer.sender();
    for m in [
        reading("d1", 1_000, 25.0),
        reading("d2", 1_000, 36.0),
        reading("d1", 2_000, 36.5),
        reading("d2", 2_000, 25.0),
    ] {
        tx.blocking_send(m, None).unwrap();
    }
    drop(tx);
    writer.close().unwrap();

    let mut engine = engine(vec![hot(0, 0)]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut effects = rt.block_on(catch_up(&store, &mut engine));
    effects.extend(engine.on_tick(3_000));
    assert_eq!(fired_for(&effects), ["d1 Some(36.5)"], "{effects:?}");
    // A second lag re-reads the same rows: the alert is already open, nothing fires again.
    let mut again = rt.block_on(catch_up(&store, &mut engine));
    again.extend(engine.on_tick(4_000));
    assert_eq!(fired_for(&again), Vec::<String>::new(), "{again:?}");
}
