//! The one conformance suite every [`CheckpointStore`] backend must pass (memory, local file, and later
//! Consul). Run it on a fresh, empty store.

use std::sync::Arc;

use tokio::task::JoinSet;

use crate::{Checkpoint, CheckpointStore, GtidState, JobStage, Position, StoreError, Versioned};

pub(crate) fn checkpoint(job: &str, gno: u64) -> Checkpoint {
    Checkpoint {
        job: job.to_string(),
        stage: JobStage::Incremental,
        position: Position {
            gtid: Some(
                GtidState::parse_for_config(&format!("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-{gno}"))
                    .expect("test gtid"),
            ),
            binlog_file: "mysql-bin.000001".to_string(),
            binlog_pos: 4 + gno,
        },
        updated_at_unix_ms: 1_700_000_000_000 + gno,
    }
}

fn assert_fenced(result: Result<u64, StoreError>, job: &str, expected: u64, found: u64) {
    match result {
        Err(StoreError::Fenced { job: j, expected: e, found: f }) => {
            assert_eq!((j.as_str(), e, f), (job, expected, found), "Fenced fields");
        }
        other => {
            panic!("expected Fenced for {job} (expected {expected}, found {found}), got {other:?}")
        }
    }
}

async fn load(store: &dyn CheckpointStore, job: &str) -> Option<Versioned<Checkpoint>> {
    store.load(job).await.expect("load")
}

/// Checks the whole [`CheckpointStore`] contract on an empty store.
pub(crate) async fn checkpoint_store_conformance(store: Arc<dyn CheckpointStore>) {
    let s: &dyn CheckpointStore = store.as_ref();

    // An empty store.
    assert_eq!(s.list().await.expect("list"), Vec::<String>::new());
    assert_eq!(load(s, "alpha").await, None, "load of a missing job");

    // Version 0 creates.
    let v1 = s.save(&checkpoint("alpha", 1), 0).await.expect("create");
    assert!(v1 > 0, "stored versions are > 0");
    assert_eq!(load(s, "alpha").await, Some(Versioned { value: checkpoint("alpha", 1), version: v1 }));

    // Creating again is fenced and changes nothing.
    assert_fenced(s.save(&checkpoint("alpha", 99), 0).await, "alpha", 0, v1);
    assert_eq!(load(s, "alpha").await.map(|v| (v.value, v.version)), Some((checkpoint("alpha", 1), v1)));

    // The current version updates, and the version increases.
    let v2 = s.save(&checkpoint("alpha", 2), v1).await.expect("update");
    assert!(v2 > v1, "version increases: {v1} -> {v2}");
    let v3 = s.save(&checkpoint("alpha", 3), v2).await.expect("update");
    assert!(v3 > v2, "version increases: {v2} -> {v3}");

    // A stale writer is fenced and does not change the stored value; so is one from the future.
    assert_fenced(s.save(&checkpoint("alpha", 50), v1).await, "alpha", v1, v3);
    assert_fenced(s.save(&checkpoint("alpha", 51), v3 + 100).await, "alpha", v3 + 100, v3);
    let stored = load(s, "alpha").await.expect("still there");
    assert_eq!((stored.value, stored.version), (checkpoint("alpha", 3), v3));

    // A non-zero expectation on a missing job is fenced (found 0) and creates nothing.
    assert_fenced(s.save(&checkpoint("ghost", 1), 7).await, "ghost", 7, 0);
    assert_eq!(load(s, "ghost").await, None);

    // Jobs are independent.
    let b1 = s.save(&checkpoint("beta", 10), 0).await.expect("create beta");
    let v4 = s.save(&checkpoint("alpha", 4), v3).await.expect("alpha after beta");
    assert!(v4 > v3);
    assert_eq!(load(s, "beta").await.map(|v| v.version), Some(b1));

    // list: sorted names of the jobs that have a checkpoint.
    s.save(&checkpoint("Gamma.1-x_y", 1), 0).await.expect("create gamma");
    assert_eq!(s.list().await.expect("list"), vec!["Gamma.1-x_y".to_string(), "alpha".to_string(), "beta".to_string()]);

    // Racing creators: exactly one wins.
    race(&store, "created-by-race", 0).await;
    // Racing updaters from the same version: exactly one wins.
    let r = s.save(&checkpoint("updated-by-race", 1), 0).await.expect("create");
    race(&store, "updated-by-race", r).await;

    // delete removes; deleting again (or a missing job) is fine.
    s.delete("beta").await.expect("delete");
    assert_eq!(load(s, "beta").await, None);
    s.delete("beta").await.expect("delete again");
    s.delete("never-existed").await.expect("delete missing");
    assert_eq!(
        s.list().await.expect("list"),
        vec![
            "Gamma.1-x_y".to_string(),
            "alpha".to_string(),
            "created-by-race".to_string(),
            "updated-by-race".to_string()
        ]
    );
    // A writer that still holds the deleted version is fenced...
    assert_fenced(s.save(&checkpoint("beta", 11), b1).await, "beta", b1, 0);
    // ...and re-creating gives versions above every earlier one of that job, so an old writer can never
    // match by accident.
    let b2 = s.save(&checkpoint("beta", 12), 0).await.expect("re-create");
    assert!(b2 > b1, "version after re-create ({b2}) must exceed the deleted one ({b1})");

    // Invalid job names are refused by every operation, naming the value.
    for bad in ["", ".hidden", "a/b", "../escape", "white space"] {
        let quoted = format!("{bad:?}");
        let check = |r: Result<(), StoreError>, op: &str| match r {
            Err(e @ StoreError::InvalidJobName { .. }) => {
                assert!(e.to_string().contains(&quoted), "{op} {bad:?}: {e}");
                assert!(!e.is_transient());
            }
            other => panic!("{op} {bad:?}: expected InvalidJobName, got {other:?}"),
        };
        check(s.load(bad).await.map(|_| ()), "load");
        check(s.save(&checkpoint(bad, 1), 0).await.map(|_| ()), "save");
        check(s.delete(bad).await, "delete");
    }
    assert_eq!(s.list().await.expect("list").len(), 5);
}

/// Starts several writers that all save `job` expecting `expected`; exactly one must win and its
/// checkpoint must be the stored one.
async fn race(store: &Arc<dyn CheckpointStore>, job: &'static str, expected: u64) {
    const WRITERS: u64 = 8;
    let mut writers = JoinSet::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(store);
        writers.spawn(async move {
            let result = store.save(&checkpoint(job, 100 + writer), expected).await;
            (writer, result)
        });
    }
    let mut winners = Vec::new();
    let mut fenced = Vec::new();
    while let Some(joined) = writers.join_next().await {
        match joined.expect("writer task") {
            (writer, Ok(version)) => winners.push((writer, version)),
            (_, Err(StoreError::Fenced { found, expected: e, .. })) => {
                assert_eq!(e, expected);
                fenced.push(found);
            }
            (_, Err(other)) => panic!("racing writer failed with {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one racing writer wins: {winners:?}");
    let (winner, version) = winners[0];
    assert!(version > expected);
    assert!(fenced.iter().all(|f| *f == version), "losers saw the winner's version: {fenced:?}");
    let stored = store.load(job).await.expect("load").expect("stored");
    assert_eq!((stored.value, stored.version), (checkpoint(job, 100 + winner), version));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conformance() {
    checkpoint_store_conformance(Arc::new(crate::MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_file_store_conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::LocalFileStore::open(dir.path()).expect("open");
    checkpoint_store_conformance(Arc::new(store)).await;
}

#[tokio::test]
async fn local_file_store_conformance_single_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::LocalFileStore::open(dir.path().join("nested/dir")).expect("open");
    checkpoint_store_conformance(Arc::new(store)).await;
}
