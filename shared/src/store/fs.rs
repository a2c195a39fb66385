//! The embedded family's [`Objects`]: one file per object under a root directory, replaced
//! atomically, with optional S3-style "object created" notifications sent to a [`Queue`].

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::rules::random_hex;
use super::{ListObjects, Object, ObjectRead, Objects, Queue, READ_CHUNK, StoreError, StoreResult};

/// The content type S3 reports for an object stored without one.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Objects stored as files under `root`: the object under key `a/b.jpg` is the file
/// `root/a/b.jpg`, and its content type is in the hidden sidecar `root/a/.b.jpg.meta`.
///
/// Keys are S3-like paths with restrictions that keep them inside `root` and away from the
/// store's own files: no empty key, no leading `/`, no empty, `.` or `..` segment, no segment
/// starting with `.` (hidden names are reserved for sidecars and temporary files), no backslash
/// and no NUL. Unlike S3, a key cannot be both an object and a "folder" of others (`a` and `a/b`).
#[derive(Clone)]
pub struct FsObjects {
    root: PathBuf,
    notifications: Vec<Notification>,
    /// Orders renames against reads in this process, so that a reader never pairs one put's data
    /// with another put's content type. Held only around renames and reads, never during I/O of a
    /// put's temporary files.
    swap: Arc<RwLock<()>>,
}

#[derive(Clone)]
struct Notification {
    prefixes: Vec<String>,
    queue: Arc<dyn Queue>,
}

impl std::fmt::Debug for FsObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsObjects")
            .field("root", &self.root)
            .field("notifications", &self.notifications.len())
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    content_type: String,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::backend(format!("{what} {}: {e}", path.display()))
}

impl FsObjects {
    /// Objects under `root`, which is created on the first put if it does not exist.
    pub fn new(root: PathBuf) -> Self {
        FsObjects { root, notifications: Vec::new(), swap: Arc::new(RwLock::new(())) }
    }

    /// Like an S3 bucket notification: after each successful put of a key that starts with one of
    /// `prefixes`, sends an S3 `ObjectCreated:Put` event to `queue`. May be called more than once
    /// to notify several queues.
    pub fn notify(mut self, prefixes: Vec<String>, queue: Arc<dyn Queue>) -> Self {
        self.notifications.push(Notification { prefixes, queue });
        self
    }

    /// The directory objects are stored under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The data file and content-type sidecar of `key`, after checking the key is acceptable.
    fn paths(&self, key: &str) -> StoreResult<(PathBuf, PathBuf)> {
        let bad = |why: &str| StoreError::backend(format!("invalid object key {key:?}: {why}"));
        if key.is_empty() {
            return Err(bad("empty"));
        }
        if key.starts_with('/') {
            return Err(bad("absolute"));
        }
        if key.contains('\\') || key.contains('\0') {
            return Err(bad("contains a backslash or NUL"));
        }
        let mut path = self.root.clone();
        let mut last = "";
        for seg in key.split('/') {
            if seg.is_empty() {
                return Err(bad("empty path segment"));
            }
            if seg.starts_with('.') {
                return Err(bad("path segment starts with '.'"));
            }
            path.push(seg);
            last = seg;
        }
        let meta = path.with_file_name(format!(".{last}.meta"));
        Ok((path, meta))
    }

    fn read_lock(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        // The lock guards no data, only ordering, so a poisoned one is as good as a healthy one.
        self.swap.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_lock(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.swap.write().unwrap_or_else(|p| p.into_inner())
    }

    fn put_blocking(&self, data: &Path, meta: &Path, bytes: &[u8], content_type: &str) -> StoreResult<()> {
        let dir = data.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(|e| io_err("create directory", dir, e))?;
        let meta_json =
            serde_json::to_vec(&Meta { content_type: content_type.to_owned() }).map_err(StoreError::backend)?;
        let tag = random_hex(8)?;
        let data_tmp = dir.join(format!(".tmp-{tag}"));
        let meta_tmp = dir.join(format!(".tmp-{tag}.meta"));
        let result = (|| {
            write_synced(&data_tmp, bytes)?;
            write_synced(&meta_tmp, &meta_json)?;
            let _guard = self.write_lock();
            // The sidecar goes first, so a reader that sees the new data also sees its type.
            fs::rename(&meta_tmp, meta).map_err(|e| io_err("rename", meta, e))?;
            fs::rename(&data_tmp, data).map_err(|e| io_err("rename", data, e))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&data_tmp);
            let _ = fs::remove_file(&meta_tmp);
        }
        result?;
        // The renames are durable only once the directory entry is on disk.
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err("sync directory", dir, e))
    }

    fn get_blocking(&self, data: &Path, meta: &Path) -> StoreResult<Option<Object>> {
        let _guard = self.read_lock();
        if !is_file(data)? {
            return Ok(None);
        }
        let bytes = match fs::read(data) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", data, e)),
        };
        Ok(Some(Object { bytes: Bytes::from(bytes), content_type: self.content_type_of(meta)? }))
    }

    /// The content type recorded in an object's sidecar.
    fn content_type_of(&self, meta: &Path) -> StoreResult<String> {
        match fs::read(meta) {
            Ok(json) => Ok(serde_json::from_slice::<Meta>(&json)
                .map_err(|e| StoreError::backend(format!("corrupt sidecar {}: {e}", meta.display())))?
                .content_type),
            // Files put under the root by hand have no sidecar; S3 would call them octet streams.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(DEFAULT_CONTENT_TYPE.to_owned()),
            Err(e) => Err(io_err("read", meta, e)),
        }
    }

    fn delete_blocking(&self, data: &Path, meta: &Path) -> StoreResult<()> {
        let _guard = self.write_lock();
        for path in [data, meta] {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", path, e)),
            }
        }
        Ok(())
    }

    async fn send_notifications(&self, key: &str, bytes: &[u8]) -> StoreResult<()> {
        let targets: Vec<&Notification> =
            self.notifications.iter().filter(|n| n.prefixes.iter().any(|p| key.starts_with(p.as_str()))).collect();
        if targets.is_empty() {
            return Ok(());
        }
        let body = s3_event_json(key, bytes, time::OffsetDateTime::now_utc())?;
        for n in targets {
            // A put whose notification is lost would leave the object unprocessed for good, so
            // the failure is reported to the caller, who retries the put (puts are idempotent).
            n.queue.send_batch(std::slice::from_ref(&body)).await.inspect_err(|e| {
                tracing::error!(key, error = %e, "could not send object-created notification");
            })?;
        }
        Ok(())
    }
}

fn is_file(path: &Path) -> StoreResult<bool> {
    match fs::metadata(path) {
        Ok(m) => Ok(m.is_file()),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(false),
        Err(e) => Err(io_err("stat", path, e)),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> StoreResult<()> {
    let mut f = File::create(path).map_err(|e| io_err("create", path, e))?;
    f.write_all(bytes).map_err(|e| io_err("write", path, e))?;
    f.sync_all().map_err(|e| io_err("sync", path, e))
}

/// Encodes a key the way S3 does in event notifications: form-URL-encoding (a space becomes
/// `+`), with the `/` separators left as they are. Consumers decode it with form-URL decoding.
pub fn s3_event_key(key: &str) -> String {
    key.split('/')
        .map(|seg| url::form_urlencoded::byte_serialize(seg.as_bytes()).collect::<String>())
        .collect::<Vec<_>>()
        .join("/")
}

/// The body S3 sends to a queue for an `ObjectCreated:Put` of `key` in the local bucket.
fn s3_event_json(key: &str, bytes: &[u8], at: time::OffsetDateTime) -> StoreResult<String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    let event_time = at.format(&fmt).map_err(StoreError::backend)?;
    // S3's ETag of a single-part upload is the MD5 of the content; the embedded family uses the
    // first 16 bytes of its SHA-256 instead, which has the same shape and the same use (telling
    // contents apart) without another hashing crate.
    let etag = hex::encode(&Sha256::digest(bytes)[..16]);
    // S3's sequencer is an opaque hex string that grows with each event on a key.
    let sequencer = format!("{:016X}", at.unix_timestamp_nanos());
    let event = serde_json::json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "local",
            "eventTime": event_time,
            "eventName": "ObjectCreated:Put",
            "userIdentity": { "principalId": "local" },
            "requestParameters": { "sourceIPAddress": "127.0.0.1" },
            "responseElements": {
                "x-amz-request-id": "local",
                "x-amz-id-2": "local"
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "local",
                "bucket": {
                    "name": "local",
                    "ownerIdentity": { "principalId": "local" },
                    "arn": "arn:aws:s3:::local"
                },
                "object": {
                    "key": s3_event_key(key),
                    "size": bytes.len(),
                    "eTag": etag,
                    "sequencer": sequencer
                }
            }
        }]
    });
    serde_json::to_string(&event).map_err(StoreError::backend)
}

/// Ranges up to this long are read whole by the task that opens the file (most variants fit);
/// longer ones stream in chunks of [`READ_CHUNK`]. It is also what one read holds in memory.
const WHOLE_READ: u64 = 256 * 1024;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> StoreResult<T> + Send + 'static) -> StoreResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::backend(format!("file task failed: {e}")))?
}

#[async_trait]
impl Objects for FsObjects {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> StoreResult<()> {
        let (data, meta) = self.paths(key)?;
        let (this, content_type, body) = (self.clone(), content_type.to_owned(), bytes.clone());
        blocking(move || this.put_blocking(&data, &meta, &body, &content_type)).await?;
        self.send_notifications(key, &bytes).await
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Object>> {
        let (data, meta) = self.paths(key)?;
        let this = self.clone();
        blocking(move || this.get_blocking(&data, &meta)).await
    }

    async fn read(&self, key: &str, range: Option<std::ops::Range<u64>>) -> StoreResult<Option<ObjectRead>> {
        use std::io::{Read, Seek, SeekFrom};
        use tokio::io::AsyncReadExt;
        let (data, _) = self.paths(key)?;
        let this = self.clone();
        // One task opens the file, finds the range and, when it is short, reads it all: a
        // request for a variant then costs one hand-off to the blocking pool, not one per step.
        // The file is opened under the read lock, so it is never a half-replaced one; once
        // open, a later replacement or delete does not change what this handle reads.
        let opened = blocking(move || {
            let mut file = {
                let _guard = this.read_lock();
                match File::open(&data) {
                    Ok(f) => f,
                    Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(None),
                    Err(e) => return Err(io_err("open", &data, e)),
                }
            };
            let total = file.metadata().map_err(|e| io_err("stat", &data, e))?.len();
            let range = super::clamp_range(range, total);
            if range.start > 0 {
                file.seek(SeekFrom::Start(range.start)).map_err(|e| io_err("seek", &data, e))?;
            }
            let len = range.end - range.start;
            let whole = if len <= WHOLE_READ {
                let mut bytes = vec![0; len as usize];
                file.read_exact(&mut bytes).map_err(|e| io_err("read", &data, e))?;
                Some(Bytes::from(bytes))
            } else {
                None
            };
            Ok(Some((file, total, range, whole)))
        })
        .await?;
        let Some((file, total, range, whole)) = opened else { return Ok(None) };
        if let Some(bytes) = whole {
            let body = futures::stream::iter((!bytes.is_empty()).then_some(Ok(bytes)));
            return Ok(Some(ObjectRead { total, range, body: Box::pin(body) }));
        }
        // A long range streams from where the file stands, one bounded chunk at a time.
        let file = tokio::fs::File::from_std(file);
        let body = futures::stream::try_unfold((file, range.end - range.start), |(mut file, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let mut chunk = vec![0; left.min(READ_CHUNK as u64) as usize];
            let n = file.read(&mut chunk).await.map_err(StoreError::backend)?;
            if n == 0 {
                return Err(StoreError::backend("the file ended before its length"));
            }
            chunk.truncate(n);
            Ok(Some((Bytes::from(chunk), (file, left - n as u64))))
        });
        Ok(Some(ObjectRead { total, range, body: Box::pin(body) }))
    }

    async fn exists(&self, key: &str) -> StoreResult<bool> {
        let (data, _) = self.paths(key)?;
        blocking(move || is_file(&data)).await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let (data, meta) = self.paths(key)?;
        let this = self.clone();
        blocking(move || this.delete_blocking(&data, &meta)).await
    }
}

#[async_trait]
impl ListObjects for FsObjects {
    async fn list(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<String>> {
        let (root, after) = (self.root.clone(), after.map(str::to_owned));
        blocking(move || {
            let mut keys = Vec::new();
            list_under(&root, "", after.as_deref(), limit.max(1), &mut keys)?;
            Ok(keys)
        })
        .await
    }
}

/// Appends to `keys` the keys under `dir` (whose keys start with `prefix`) that sort after
/// `after`, in S3's byte order, until `keys` holds `limit`. A folder's keys all start with its
/// name and `/`, so entries sort by that (`a/` after `a-b`, as in S3), and a folder whose keys
/// all come before `after` is skipped without being read.
fn list_under(dir: &Path, prefix: &str, after: Option<&str>, limit: usize, keys: &mut Vec<String>) -> StoreResult<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list", dir, e)),
    };
    let mut named = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err("list", dir, e))?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        // Hidden names are the store's own sidecars and temporary files, never objects.
        if name.starts_with('.') {
            continue;
        }
        let is_dir = entry.file_type().map_err(|e| io_err("stat", &entry.path(), e))?.is_dir();
        let key = format!("{prefix}{name}{}", if is_dir { "/" } else { "" });
        named.push((key, is_dir));
    }
    named.sort();
    for (key, is_dir) in named {
        if keys.len() >= limit {
            break;
        }
        if is_dir {
            // Every key inside starts with `key`: all come before `after` unless `after` is
            // before `key` or inside it.
            if after.is_some_and(|a| a >= key.as_str() && !a.starts_with(key.as_str())) {
                continue;
            }
            let name = key.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned();
            list_under(&dir.join(name), &key, after, limit, keys)?;
        } else if after.is_none_or(|a| key.as_str() > a) {
            keys.push(key);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::s3::S3Event;

    #[test]
    fn notification_body_deserializes_as_an_s3_event() {
        let at = time::macros::datetime!(2024-05-06 07:08:09.123456 UTC);
        let body = s3_event_json("uploads/my photo (1).jpg", b"hello", at).unwrap();

        let event: S3Event = serde_json::from_str(&body).unwrap();

        assert_eq!(event.records.len(), 1);
        let record = &event.records[0];
        assert_eq!(record.event_name.as_deref(), Some("ObjectCreated:Put"));
        assert_eq!(record.event_source.as_deref(), Some("aws:s3"));
        assert_eq!(record.event_time.to_rfc3339(), "2024-05-06T07:08:09.123+00:00");
        assert_eq!(record.s3.bucket.name.as_deref(), Some("local"));
        assert_eq!(record.s3.object.key.as_deref(), Some("uploads/my+photo+%281%29.jpg"));
        assert_eq!(record.s3.object.size, Some(5));
        assert_eq!(record.s3.object.e_tag.as_ref().map(String::len), Some(32));
    }

    #[test]
    fn event_keys_decode_back_to_the_original() {
        for key in ["a/b.jpg", "x y/z+w%.png", "ünï/cødé?&=.gif"] {
            let encoded = s3_event_key(key);
            let decoded: String =
                url::form_urlencoded::parse(format!("k={encoded}").as_bytes()).map(|(_, v)| v.into_owned()).collect();
            // Form decoding turns every `/` back as-is, since `/` was never encoded.
            assert_eq!(decoded, key, "{encoded}");
        }
    }

    #[test]
    fn keys_that_escape_the_root_or_hit_reserved_names_are_rejected() {
        let store = FsObjects::new(PathBuf::from("/tmp/root"));
        for key in ["", "/abs", "a//b", "a/../b", "..", "./a", "a/.hidden", "a\\b", "a/"] {
            assert!(store.paths(key).is_err(), "{key:?} should be rejected");
        }
        let (data, meta) = store.paths("a/b c.jpg").unwrap();
        assert_eq!(data, PathBuf::from("/tmp/root/a/b c.jpg"));
        assert_eq!(meta, PathBuf::from("/tmp/root/a/.b c.jpg.meta"));
    }
}
