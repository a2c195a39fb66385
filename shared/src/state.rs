//! The application state every router and worker shares: storage handles and delivery settings.
//! Built once per process (per Lambda cold start, or once by the local runner).

#[cfg(feature = "embedded")]
use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, Storage};
use crate::secret;
#[cfg(feature = "embedded")]
use crate::store::StoreError;
#[cfg(feature = "aws")]
use crate::store::aws::{DynamoTable, S3Objects, SqsQueue};
#[cfg(feature = "embedded")]
use crate::store::fs::FsObjects;
#[cfg(feature = "embedded")]
use crate::store::sqlite::{SqliteDb, SqliteQueue, SqliteTable};
use crate::store::{Objects, Queue, Table};
use aws_credential_types::provider::SharedCredentialsProvider;

/// Name of the local queue that carries object-created notifications, as S3 does in AWS.
pub const OBJECT_EVENTS_QUEUE: &str = "object-created";
/// Prefixes whose new objects notify the workers (the bucket notification of the template).
pub const NOTIFY_PREFIXES: [&str; 2] = ["originals/", "incoming/"];
/// Name of the local queue that carries import messages, as SQS does in AWS.
pub const IMPORTS_QUEUE: &str = "imports";
/// Name of the local queue that carries keep-alive loads.
pub const KEEPALIVE_QUEUE: &str = "keepalive";
/// Name of the local queue that carries AVIF passes.
pub const AVIF_QUEUE: &str = "avif";
/// Receives after which a local message is moved aside as dead, like an SQS redrive policy.
pub const LOCAL_MAX_RECEIVES: u32 = 5;

pub struct AppInner {
    pub table: Arc<dyn Table>,
    pub objects: Arc<dyn Objects>,
    /// The base of every link the API hands out. When `None`, links are built from the
    /// request: see `http::base_url`.
    pub public_url: Option<String>,
    /// Whether `X-Forwarded-Host` and `X-Forwarded-Proto` may be believed: only when the
    /// operator says a trusted proxy sets them (a client could send them otherwise).
    pub trust_proxy: bool,
    /// The admin token, as a digest or where to read it.
    pub admin: AdminSecret,
    /// Where presigned upload forms post to.
    pub uploads: UploadTarget,
    /// The queue of import messages (one per URL); `None` where imports are not wired.
    pub imports: Option<Arc<dyn Queue>>,
    /// The queue of keep-alive load messages; `None` where keep-alive is not wired.
    pub keepalive: Option<Arc<dyn Queue>>,
    /// The queue of AVIF passes (`workers::avif`); `None` where it is not wired, and then
    /// images keep their first-pass variants.
    pub avif: Option<Arc<dyn Queue>>,
    /// Records kept in memory between requests; `None` where other processes write too.
    pub records: Option<RecordCache>,
    /// Small objects kept in memory between requests, same rule.
    pub object_cache: Option<ObjectCache>,
}

/// A map that holds at most `capacity` units of weight, for the caches below: when a new
/// entry would not fit, arbitrary entries make room. A panic while holding its lock leaves a
/// map that is still a valid cache, so a poisoned lock is used as it is.
struct Bounded<V> {
    capacity: usize,
    weigh: fn(&V) -> usize,
    inner: std::sync::Mutex<(std::collections::HashMap<String, V>, usize)>,
}

impl<V: Clone> Bounded<V> {
    fn new(capacity: usize, weigh: fn(&V) -> usize) -> Self {
        Bounded { capacity, weigh, inner: Default::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (std::collections::HashMap<String, V>, usize)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: &str) -> Option<V> {
        self.lock().0.get(key).cloned()
    }

    /// Keeps `value` under `key`; a value heavier than the whole capacity is not kept.
    fn put(&self, key: &str, value: V) {
        let weight = (self.weigh)(&value);
        if weight > self.capacity {
            return;
        }
        let mut guard = self.lock();
        let (map, used) = &mut *guard;
        if let Some(old) = map.remove(key) {
            *used -= (self.weigh)(&old);
        }
        while *used + weight > self.capacity {
            let Some(k) = map.keys().next().cloned() else { break };
            if let Some(old) = map.remove(&k) {
                *used -= (self.weigh)(&old);
            }
        }
        *used += weight;
        map.insert(key.to_owned(), value);
    }

    fn remove(&self, key: &str) {
        let mut guard = self.lock();
        let (map, used) = &mut *guard;
        if let Some(old) = map.remove(key) {
            *used -= (self.weigh)(&old);
        }
    }

    fn used(&self) -> usize {
        self.lock().1
    }
}

/// A bounded in-memory cache of records that no longer change (an image whose variants are
/// settled), shared by the requests of one process. Only a process that is the only writer
/// may have one, since it must drop what it deletes: the local runner does, Lambdas (many
/// processes) do not. At most `capacity` entries, so its memory is bounded.
pub struct RecordCache(Bounded<Arc<dyn std::any::Any + Send + Sync>>);

impl RecordCache {
    pub fn new(capacity: usize) -> Self {
        RecordCache(Bounded::new(capacity.max(1), |_| 1))
    }

    /// The record under `key`, if it is cached and of type `T`.
    pub fn get<T: std::any::Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        self.0.get(key).and_then(|v| v.downcast::<T>().ok())
    }

    pub fn put<T: std::any::Any + Send + Sync>(&self, key: &str, value: Arc<T>) {
        self.0.put(key, value);
    }

    pub fn remove(&self, key: &str) {
        self.0.remove(key);
    }

    pub fn len(&self) -> usize {
        self.0.used()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many records the local runner keeps in memory (about 1 KiB each).
pub const LOCAL_RECORD_CACHE: usize = 4096;

/// A bounded in-memory cache of small objects that are served again and again (image variants),
/// by object key, for a process that is the only writer (the same rule as [`RecordCache`]). The
/// bytes under a key never change, so an entry is never stale; a delete drops its keys. At most
/// `capacity` bytes of objects.
pub struct ObjectCache(Bounded<bytes::Bytes>);

impl ObjectCache {
    pub fn new(capacity: usize) -> Self {
        ObjectCache(Bounded::new(capacity, bytes::Bytes::len))
    }

    pub fn get(&self, key: &str) -> Option<bytes::Bytes> {
        self.0.get(key)
    }

    /// Keeps `bytes` under `key`, making room as needed; an object larger than the whole
    /// cache is not kept.
    pub fn put(&self, key: &str, bytes: bytes::Bytes) {
        self.0.put(key, bytes);
    }

    pub fn remove(&self, key: &str) {
        self.0.remove(key);
    }

    /// The bytes held.
    pub fn used(&self) -> usize {
        self.0.used()
    }
}

/// How many bytes of served objects the local runner keeps in memory.
pub const LOCAL_OBJECT_CACHE: usize = 32 << 20;

/// Where handed-out forms post to.
#[derive(Clone)]
pub enum UploadTarget {
    /// The local server's own `POST /v1/uploads/{id}`.
    Local,
    /// An S3 bucket, with the credentials the form is signed with.
    S3 { bucket: String, region: String, endpoint: Option<String>, credentials: SharedCredentialsProvider },
}

impl std::fmt::Debug for UploadTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadTarget::Local => f.write_str("Local"),
            UploadTarget::S3 { bucket, region, endpoint, .. } => {
                write!(f, "S3 {{ bucket: {bucket}, region: {region}, endpoint: {endpoint:?} }}")
            }
        }
    }
}

/// Cheap to clone: routers and workers each hold one.
#[derive(Clone)]
pub struct App(Arc<AppInner>);

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    /// The one way to assemble an `App`: the storage it cannot do without, then whatever a
    /// caller wires beyond the defaults (links built from the request,
    /// no admin, forms posted to the local endpoint, no queues).
    pub fn builder(table: Arc<dyn Table>, objects: Arc<dyn Objects>) -> AppBuilder {
        AppBuilder(AppInner {
            table,
            objects,
            public_url: None,
            trust_proxy: false,
            admin: AdminSecret::Disabled,
            uploads: UploadTarget::Local,
            imports: None,
            keepalive: None,
            avif: None,
            records: None,
            object_cache: None,
        })
    }

    /// Whether `token` is the admin token, compared by digest in constant time. In AWS the
    /// first call reads the token from SSM; a failure to read it is an error (503), not a
    /// refusal, so that an outage is not mistaken for a wrong token.
    pub async fn is_admin_token(&self, token: &str) -> Result<bool, crate::Error> {
        Ok(self.admin.digest().await?.is_some_and(|d| secret::matches_digest(token, &d)))
    }
}

/// Assembles an [`App`]; see [`App::builder`].
pub struct AppBuilder(AppInner);

impl AppBuilder {
    pub fn public_url(mut self, url: Option<String>) -> Self {
        self.0.public_url = url;
        self
    }

    pub fn trust_proxy(mut self, trust: bool) -> Self {
        self.0.trust_proxy = trust;
        self
    }

    pub fn admin(mut self, admin: AdminSecret) -> Self {
        self.0.admin = admin;
        self
    }

    pub fn uploads(mut self, target: UploadTarget) -> Self {
        self.0.uploads = target;
        self
    }

    pub fn imports(mut self, queue: Arc<dyn Queue>) -> Self {
        self.0.imports = Some(queue);
        self
    }

    pub fn keepalive(mut self, queue: Arc<dyn Queue>) -> Self {
        self.0.keepalive = Some(queue);
        self
    }

    pub fn avif(mut self, queue: Arc<dyn Queue>) -> Self {
        self.0.avif = Some(queue);
        self
    }

    /// Keeps up to `capacity` settled records in memory; only for a process that is the only
    /// writer of its storage (see [`RecordCache`]).
    pub fn object_cache(mut self, capacity_bytes: usize) -> Self {
        self.0.object_cache = Some(ObjectCache::new(capacity_bytes));
        self
    }

    pub fn record_cache(mut self, capacity: usize) -> Self {
        self.0.records = Some(RecordCache::new(capacity));
        self
    }

    pub fn build(self) -> App {
        App(Arc::new(self.0))
    }
}

/// Where the admin token's digest comes from. Only functions with admin routes are given one;
/// the others never touch SSM.
pub enum AdminSecret {
    /// No admin here: admin routes answer 401.
    Disabled,
    /// SHA-256 of the token, known at start (local runs, tests).
    Digest([u8; 32]),
    /// An SSM SecureString, read on the first request that needs it and kept for the life of
    /// the process: a cold start of a public request makes no SSM call.
    #[cfg(feature = "aws")]
    Parameter { name: String, sdk: Box<aws_config::SdkConfig>, digest: tokio::sync::OnceCell<[u8; 32]> },
}

impl AdminSecret {
    /// The digest, reading it first if it lives in SSM.
    pub async fn digest(&self) -> Result<Option<[u8; 32]>, crate::Error> {
        match self {
            AdminSecret::Disabled => Ok(None),
            AdminSecret::Digest(d) => Ok(Some(*d)),
            #[cfg(feature = "aws")]
            AdminSecret::Parameter { name, sdk, digest } => digest
                .get_or_try_init(|| async {
                    let token = crate::aws::read_secure_parameter(sdk, name).await?;
                    Ok::<_, crate::Error>(secret::digest(&token))
                })
                .await
                .map(|d| Some(*d)),
        }
    }

    /// A token given in the configuration (never in AWS), or none.
    pub fn from_token(token: Option<&str>) -> Self {
        token.map_or(AdminSecret::Disabled, |t| AdminSecret::Digest(secret::digest(t)))
    }
}

/// The embedded storage family under one data directory, with the queue that local workers
/// consume.
#[cfg(feature = "embedded")]
pub struct LocalStorage {
    pub db: SqliteDb,
    pub table: Arc<SqliteTable>,
    pub objects: Arc<FsObjects>,
    pub object_events: Arc<SqliteQueue>,
    pub imports: Arc<SqliteQueue>,
    pub keepalive: Arc<SqliteQueue>,
    pub avif: Arc<SqliteQueue>,
}

#[cfg(feature = "embedded")]
impl LocalStorage {
    /// The SQLite file of a data directory: the table and every queue.
    pub fn db_path(data_dir: &Path) -> std::path::PathBuf {
        data_dir.join("imghost.db")
    }

    /// The folder of a data directory that holds the objects.
    pub fn objects_dir(data_dir: &Path) -> std::path::PathBuf {
        data_dir.join("objects")
    }

    /// An `App` over this storage, with its queues wired as the local runner wires them.
    pub fn app(&self) -> AppBuilder {
        // One server per data directory (its lock) makes this process the only writer.
        App::builder(self.table.clone(), self.objects.clone())
            .imports(self.imports.clone())
            .keepalive(self.keepalive.clone())
            .avif(self.avif.clone())
            .record_cache(LOCAL_RECORD_CACHE)
            .object_cache(LOCAL_OBJECT_CACHE)
    }

    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(StoreError::backend)?;
        let db = SqliteDb::open(&Self::db_path(data_dir))?;
        let table = Arc::new(SqliteTable::new(db.clone()));
        let object_events = Arc::new(SqliteQueue::new(db.clone(), OBJECT_EVENTS_QUEUE, LOCAL_MAX_RECEIVES));
        let queue: Arc<dyn Queue> = object_events.clone();
        let objects = Arc::new(
            FsObjects::new(Self::objects_dir(data_dir))
                .notify(NOTIFY_PREFIXES.iter().map(|p| p.to_string()).collect(), queue),
        );
        let imports = Arc::new(SqliteQueue::new(db.clone(), IMPORTS_QUEUE, LOCAL_MAX_RECEIVES));
        let keepalive = Arc::new(SqliteQueue::new(db.clone(), KEEPALIVE_QUEUE, LOCAL_MAX_RECEIVES));
        let avif = Arc::new(SqliteQueue::new(db.clone(), AVIF_QUEUE, LOCAL_MAX_RECEIVES));
        Ok(LocalStorage { db, table, objects, object_events, imports, keepalive, avif })
    }
}

/// Builds the state for a Lambda function from its configuration.
pub async fn from_config(cfg: &Config) -> Result<App, crate::Error> {
    match &cfg.storage {
        #[cfg(not(feature = "embedded"))]
        Storage::Local { .. } => {
            Err(crate::Error::internal("this build has no embedded storage (the `embedded` feature is off)"))
        }
        #[cfg(feature = "embedded")]
        Storage::Local { data_dir } => {
            let local = LocalStorage::open(data_dir)?;
            Ok(local
                .app()
                .public_url(cfg.public_url.clone())
                .trust_proxy(cfg.trust_proxy)
                .admin(AdminSecret::from_token(cfg.admin_token.as_deref()))
                .build())
        }
        #[cfg(not(feature = "aws"))]
        Storage::Aws { .. } => Err(crate::Error::internal("this build has no AWS storage (the `aws` feature is off)")),
        #[cfg(feature = "aws")]
        Storage::Aws { bucket, table, region, endpoint } => {
            let sdk = crate::aws::lambda_sdk_config(region.clone(), endpoint.clone());
            let s3 = aws_sdk_s3::Client::new(&sdk);
            let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let queue = |url: &Option<String>| {
                url.as_ref().map(|u| Arc::new(SqsQueue::new(sqs.clone(), u.clone())) as Arc<dyn Queue>)
            };
            let (imports, keepalive) = (queue(&cfg.import_queue_url), queue(&cfg.keepalive_queue_url));
            let avif = queue(&cfg.avif_queue_url);
            let admin = match &cfg.admin_token_param {
                Some(name) => AdminSecret::Parameter {
                    name: name.clone(),
                    sdk: Box::new(sdk.clone()),
                    digest: tokio::sync::OnceCell::new(),
                },
                None => AdminSecret::from_token(cfg.admin_token.as_deref()),
            };
            let credentials = sdk
                .credentials_provider()
                .ok_or_else(|| crate::Error::internal("the AWS SDK found no credentials provider"))?;
            let uploads = UploadTarget::S3 {
                bucket: bucket.clone(),
                region: sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into()),
                endpoint: sdk.endpoint_url().map(str::to_owned),
                credentials,
            };
            let mut app = App::builder(
                Arc::new(DynamoTable::new(dynamo, table.clone())),
                Arc::new(S3Objects::new(s3, bucket.clone())),
            )
            .public_url(cfg.public_url.clone())
            .trust_proxy(cfg.trust_proxy)
            .admin(admin)
            .uploads(uploads);
            if let Some(q) = imports {
                app = app.imports(q);
            }
            if let Some(q) = keepalive {
                app = app.keepalive(q);
            }
            if let Some(q) = avif {
                app = app.avif(q);
            }
            Ok(app.build())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ObjectCache, RecordCache};
    use bytes::Bytes;
    use std::sync::Arc;

    #[test]
    fn the_record_cache_holds_at_most_its_capacity_and_only_the_type_asked_for() {
        // Given a cache of two records,
        let cache = RecordCache::new(2);
        // when three are put,
        for i in 0..3u32 {
            cache.put(&format!("r{i}"), Arc::new(i));
        }
        // then two are held, the last one among them, and it reads back only as its own type.
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get::<u32>("r2").as_deref(), Some(&2));
        assert!(cache.get::<String>("r2").is_none());
        cache.remove("r2");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_object_cache_never_holds_more_than_its_capacity() {
        // Given a cache of 100 bytes,
        let cache = ObjectCache::new(100);
        // when objects of various sizes are put, some twice, some too large,
        for (i, len) in [40, 40, 40, 10, 101, 60, 40, 0, 100].into_iter().enumerate() {
            cache.put(&format!("k{}", i % 4), Bytes::from(vec![i as u8; len]));
            // then it never holds more than 100 bytes,
            assert!(cache.used() <= 100, "after put {i}: {}", cache.used());
        }
        // what it holds is what was put last under a key,
        let last = cache.get("k0").expect("the last object put is kept");
        assert_eq!(last, Bytes::from(vec![8u8; 100]));
        // an object larger than the whole cache is not kept,
        cache.put("huge", Bytes::from(vec![0; 101]));
        assert!(cache.get("huge").is_none());
        // and removing gives its bytes back.
        cache.remove("k0");
        assert_eq!(cache.used(), 0);
        assert!(cache.get("k0").is_none());
    }
}
