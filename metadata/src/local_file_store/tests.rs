use std::sync::Arc;

use super::*;
use crate::conformance::checkpoint;

fn open(dir: &Path) -> LocalFileStore {
    LocalFileStore::open(dir).expect("open store")
}

fn file_of(dir: &Path, job: &str) -> PathBuf {
    dir.join(format!("{job}.checkpoint.json"))
}

fn assert_corrupt(result: Result<impl std::fmt::Debug, StoreError>, path_part: &str, reason_part: &str) {
    match result {
        Err(e @ StoreError::Corrupt { .. }) => {
            assert!(!e.is_transient());
            let msg = e.to_string();
            assert!(msg.contains(path_part), "{msg} lacks {path_part}");
            assert!(msg.contains(reason_part), "{msg} lacks {reason_part}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn persists_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v1 = {
        let store = open(dir.path());
        let v = store.save(&checkpoint("job1", 5), 0).await.expect("save");
        store.save(&checkpoint("job1", 6), v).await.expect("save")
    };
    let reopened = open(dir.path());
    let loaded = reopened.load("job1").await.expect("load").expect("present");
    assert_eq!((loaded.value, loaded.version), (checkpoint("job1", 6), v1));
    assert_eq!(reopened.list().await.expect("list"), vec!["job1".to_string()]);
    // CAS continues from the persisted version.
    let v2 = reopened.save(&checkpoint("job1", 7), v1).await.expect("save after reopen");
    assert!(v2 > v1);
}

#[tokio::test]
async fn file_format_and_no_tmp_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let v = store.save(&checkpoint("job1", 3), 0).await.expect("save");
    let text = std::fs::read_to_string(file_of(dir.path(), "job1")).expect("read file");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json["version"], v);
    assert_eq!(json["checkpoint"]["job"], "job1");
    assert_eq!(json["checkpoint"]["stage"], "job_stage_incr");
    assert_eq!(json["checkpoint"]["position"]["flavor"], "mysql");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["job1.checkpoint.json".to_string()]);
}

#[tokio::test]
async fn leftover_tmp_file_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let tmp = dir.path().join("job1.checkpoint.json.tmp");
    std::fs::write(&tmp, b"{\"version\": 9, \"checkp").expect("write tmp");
    assert_eq!(store.load("job1").await.expect("load"), None);
    assert_eq!(store.list().await.expect("list"), Vec::<String>::new());
    let v = store.save(&checkpoint("job1", 1), 0).await.expect("save over leftover");
    let loaded = store.load("job1").await.expect("load").expect("present");
    assert_eq!((loaded.value, loaded.version), (checkpoint("job1", 1), v));
    assert!(!tmp.exists(), "the leftover was replaced and renamed into place");

    // A leftover next to an existing checkpoint does not hide or change it.
    std::fs::write(&tmp, b"garbage").expect("write tmp");
    let loaded = store.load("job1").await.expect("load").expect("present");
    assert_eq!(loaded.version, v);
    assert_eq!(store.list().await.expect("list"), vec!["job1".to_string()]);
}

#[tokio::test]
async fn corrupt_files_are_reported_not_panicked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", b"{\"version\":3,\"checkpoint\":{\"job\":".to_vec(), "not a checkpoint file"),
        ("empty", Vec::new(), "not a checkpoint file"),
        ("binary", vec![0xff, 0xfe, 0x00, 0x12], "not a checkpoint file"),
        ("wrongshape", b"[1,2,3]".to_vec(), "not a checkpoint file"),
        (
            "badgtid",
            br#"{"version":1,"checkpoint":{"job":"badgtid","stage":"job_stage_incr","position":{"gtid":"zz:1","flavor":"mysql","binlog_file":"","binlog_pos":0},"updated_at_unix_ms":1}}"#.to_vec(),
            "\"zz\" is not a server UUID",
        ),
        (
            "badstage",
            br#"{"version":1,"checkpoint":{"job":"badstage","stage":"running","position":{},"updated_at_unix_ms":1}}"#.to_vec(),
            "running",
        ),
    ];
    for (job, content, reason) in &cases {
        std::fs::write(file_of(dir.path(), job), content).expect("write");
        assert_corrupt(store.load(job).await, &format!("{job}.checkpoint.json"), reason);
        // A save cannot compare against a corrupt file: also Corrupt, and the file is left alone.
        assert_corrupt(store.save(&checkpoint(job, 1), 0).await, job, reason);
        assert_eq!(&std::fs::read(file_of(dir.path(), job)).expect("read"), content);
    }

    // Right JSON but version 0, or another job's checkpoint.
    let zero = serde_json::json!({"version": 0, "checkpoint": checkpoint("zero", 1)});
    std::fs::write(file_of(dir.path(), "zero"), zero.to_string()).expect("write");
    assert_corrupt(store.load("zero").await, "zero", "version is 0");
    let other = serde_json::json!({"version": 4, "checkpoint": checkpoint("someone-else", 1)});
    std::fs::write(file_of(dir.path(), "mine"), other.to_string()).expect("write");
    assert_corrupt(store.load("mine").await, "mine", "job \"someone-else\"");

    // Deleting is the way out: it works on a corrupt file, and the job starts afresh.
    store.delete("truncated").await.expect("delete corrupt");
    assert_eq!(store.load("truncated").await.expect("load"), None);
    store.save(&checkpoint("truncated", 1), 0).await.expect("save after delete");
}

#[tokio::test]
async fn invalid_job_names_touch_no_files() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("store");
    let store = open(&dir);
    let too_long = "x".repeat(65);
    for bad in ["../outside", ".hidden", "a/b", "", too_long.as_str(), "a\\b", "tab\t"] {
        match store.save(&checkpoint(bad, 1), 0).await {
            Err(e @ StoreError::InvalidJobName { .. }) => {
                assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert_eq!(std::fs::read_dir(&dir).expect("read_dir").count(), 0);
    assert_eq!(std::fs::read_dir(root.path()).expect("read_dir").count(), 1);
    // 64 characters is fine.
    let longest = "y".repeat(64);
    store.save(&checkpoint(&longest, 1), 0).await.expect("64-char name");
    assert_eq!(store.list().await.expect("list"), vec![longest]);
}

#[tokio::test]
async fn list_ignores_unrelated_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.save(&checkpoint("real", 1), 0).await.expect("save");
    for name in ["notes.txt", ".hidden.checkpoint.json", "real.checkpoint.json.tmp", "checkpoint.json"] {
        std::fs::write(dir.path().join(name), b"x").expect("write");
    }
    std::fs::create_dir(dir.path().join("adir.checkpoint.json")).expect("mkdir");
    assert_eq!(store.list().await.expect("list"), vec!["real".to_string()]);
}

#[tokio::test]
async fn open_fails_cleanly_on_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").expect("write");
    match LocalFileStore::open(&file) {
        Err(e @ StoreError::Io { .. }) => {
            assert!(e.is_transient());
            assert!(e.to_string().contains("plain-file"), "{e}");
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_store_handles_on_one_directory_are_serialised() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Arc::new(open(dir.path()));
    // Opened through a different spelling of the same path.
    let b = Arc::new(open(&dir.path().join(".")));
    let v = a.save(&checkpoint("shared", 1), 0).await.expect("create");
    for round in 0..20u64 {
        let (ra, rb) = tokio::join!(
            {
                let a = Arc::clone(&a);
                tokio::spawn(async move { a.save(&checkpoint("shared", 1000 + round), v).await })
            },
            {
                let b = Arc::clone(&b);
                tokio::spawn(async move { b.save(&checkpoint("shared", 2000 + round), v).await })
            }
        );
        let (ra, rb) = (ra.expect("task a"), rb.expect("task b"));
        if round == 0 {
            assert!(ra.is_ok() != rb.is_ok(), "exactly one of two handles wins: {ra:?} / {rb:?}");
        } else {
            // v is stale after round 0: both lose.
            assert!(ra.is_err() && rb.is_err(), "stale version must be fenced: {ra:?} / {rb:?}");
        }
    }
}

#[tokio::test]
async fn dropped_save_future_does_not_break_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    // Start a save and drop it half-way (after its first poll).
    {
        let cp = checkpoint("job1", 1);
        let fut = store.save(&cp, 0);
        let _ = tokio::time::timeout(std::time::Duration::from_nanos(1), fut).await;
    }
    // Wait for a blocking part that may still run: it holds the write lock until it is done.
    drop(WRITE_LOCK.lock().await);
    // Whatever happened to it, the store stays consistent and usable.
    let current = store.load("job1").await.expect("load").map_or(0, |v| v.version);
    let v = store.save(&checkpoint("job1", 2), current).await.expect("save");
    assert!(v > current);
}
