//! The deployed stack on moto: the resources the template makes, one IAM user per function with
//! that function's template policy, the functions as processes, and what AWS does between them
//! (bucket notifications, the SQS event source mapping, the schedule, a browser's form POST).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::RwLock;

use crate::events::{self, ApiContext, ObjectCreated, SqsMessage};
use crate::facts::{self, EventSource, Facts, FunctionFacts, Statement};
use crate::policy;
use crate::runtime::{InvokeError, Lambda, Launch};
use crate::support::{self, Moto};

/// moto's default account, which every resource here lives in.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// The variables Lambda itself sets in a function's environment (next to the template's), as the
/// harness sets them; `AWS_ENDPOINT_URL` is the one addition, pointing the SDK at moto.
pub const LAMBDA_VARIABLES: [&str; 18] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT_URL",
    "_HANDLER",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "TZ",
    "LANG",
    "PATH",
];

/// An IAM user on moto and its access key.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub user_id: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The policy moto enforces for it.
    pub statements: Vec<Statement>,
}

/// A queue the template declares, as made on moto.
#[derive(Debug, Clone)]
pub struct Queue {
    pub logical_id: String,
    pub name: String,
    pub url: String,
    pub arn: String,
}

/// One batch the event source mapping handed to a function.
#[derive(Debug)]
pub struct Polled {
    pub messages: Vec<SqsMessage>,
    pub result: Result<Value, InvokeError>,
    /// Message ids the function reported failed (all of them when the invocation failed).
    pub failed: Vec<String>,
}

pub struct Stack {
    moto: Moto,
    pub endpoint: String,
    /// The stack name (`AWS::StackName`).
    pub name: String,
    pub table: String,
    pub table_arn: String,
    pub bucket: String,
    /// By logical id.
    pub queues: BTreeMap<String, Queue>,
    pub admin_token_param: String,
    pub admin_token: String,
    /// `https://<Distribution.DomainName>`.
    pub cdn_url: String,
    pub api: ApiContext,
    pub facts: Facts,
    /// The harness's own clients, signed as its admin user (policy `*`).
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    admin: User,
    http: reqwest::Client,
    gate: Arc<RwLock<()>>,
    /// Users by the policy they carry, and by access key id.
    users: tokio::sync::Mutex<HashMap<String, User>>,
    keys: std::sync::Mutex<HashMap<String, User>>,
    function_names: std::sync::Mutex<HashMap<String, String>>,
}

impl Stack {
    /// Starts moto with IAM enforcement, makes the template's resources and users without
    /// authentication, resolves the template's facts against them, and turns enforcement on.
    pub async fn start() -> Stack {
        let started = std::time::Instant::now();
        // Enforcement starts at `reset-auth 0` below; until then every request is let through.
        let moto = tokio::task::spawn_blocking(|| support::start_moto_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "inf")]))
            .await
            .expect("starting moto");
        let endpoint = moto.endpoint();
        let http = reqwest::Client::new();
        set_enforcement(&http, &endpoint, false).await;

        // CloudFormation-like names. The stack name is lowercase and short so that the
        // template's bucket name `${AWS::StackName}-images-${AWS::AccountId}` is valid.
        let name = format!("imghost-e2e-{}", events::random_hex(4));
        let bucket = format!("{name}-images-{ACCOUNT}");
        let table = format!("{name}-Table-{}", events::physical_suffix(12));
        let dynamodb = moto.dynamodb();
        imghost::store::aws::provision::ensure_table(&dynamodb, &table).await.expect("create the table");
        let table_arn = dynamodb
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .expect("describe the table")
            .table
            .and_then(|t| t.table_arn)
            .expect("the table's ARN");
        imghost::store::aws::provision::ensure_bucket(&moto.s3(), &bucket).await.expect("create the bucket");
        let queues = make_queues(&moto.sqs(), &name).await;

        let admin_token_param = format!("/{name}/admin-token");
        let admin_token = imghost::secret::new_token();
        moto.ssm()
            .put_parameter()
            .name(&admin_token_param)
            .value(&admin_token)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("create the admin token parameter");

        let cdn_domain = format!("d{}.cloudfront.net", events::random_hex(7).get(..13).unwrap_or("0"));
        let mut refs = json!({"Table": table, "AdminTokenParameterName": admin_token_param});
        let mut atts = json!({"Table.Arn": table_arn, "Distribution.DomainName": cdn_domain});
        for q in queues.values() {
            refs[&q.logical_id] = json!(q.url);
            atts[format!("{}.Arn", q.logical_id)] = json!(q.arn);
            atts[format!("{}.QueueName", q.logical_id)] = json!(q.name);
        }
        let values = json!({
            "Ref": refs,
            "GetAtt": atts,
            "Pseudo": {"AWS::StackName": name, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws"},
        });
        let facts = facts::template_facts(&values);
        let unresolved = facts.unresolved();
        assert!(unresolved.is_empty(), "the harness gave template-facts no value for:\n{}", unresolved.join("\n"));
        for (id, f) in &facts.functions {
            assert_eq!(
                f.environment.get("IMGHOST_BUCKET"),
                Some(&bucket),
                "{id}: the template's bucket expression should resolve to the bucket the harness made"
            );
        }

        let admin_statements =
            vec![Statement { effect: "Allow".into(), action: vec!["*".into()], resource: vec!["*".into()] }];
        let admin = create_user(&http, &endpoint, &format!("{name}-harness-admin"), &admin_statements).await;
        let stack = Stack {
            s3: s3_client(&endpoint, &admin),
            sqs: sqs_client(&endpoint, &admin),
            dynamodb: dynamodb_client(&endpoint, &admin),
            api: ApiContext { api_id: events::random_hex(5), account: ACCOUNT.into(), region: REGION.into() },
            cdn_url: format!("https://{cdn_domain}"),
            endpoint,
            name,
            table,
            table_arn,
            bucket,
            queues,
            admin_token_param,
            admin_token,
            facts,
            admin: admin.clone(),
            http,
            gate: Arc::new(RwLock::new(())),
            users: tokio::sync::Mutex::new(HashMap::new()),
            keys: std::sync::Mutex::new([(admin.access_key_id.clone(), admin)].into()),
            function_names: std::sync::Mutex::new(HashMap::new()),
            moto,
        };
        // Every function's user, while enforcement is still off.
        for (id, f) in &stack.facts.functions {
            stack.create_function_user(id, f).await;
        }
        set_enforcement(&stack.http, &stack.endpoint, true).await;

        // Enforcement is on: moto's default test credentials belong to no user and are refused.
        let anonymous = stack.moto.s3().head_bucket().bucket(&stack.bucket).send().await;
        assert!(anonymous.is_err(), "moto accepted unknown credentials: IAM enforcement is not on");
        stack.s3.head_bucket().bucket(&stack.bucket).send().await.expect("the harness's admin user can reach S3");
        eprintln!(
            "[deployed] stack {} ready on {} in {:.1} s",
            stack.name,
            stack.endpoint,
            started.elapsed().as_secs_f64()
        );
        stack
    }

    /// The deployed name of a function (CloudFormation's `<stack>-<logical id>-<suffix>`).
    pub fn function_name(&self, logical_id: &str) -> String {
        let mut names = self.function_names.lock().unwrap_or_else(|e| e.into_inner());
        names
            .entry(logical_id.to_owned())
            .or_insert_with(|| {
                let mut n = format!("{}-{logical_id}-{}", self.name, events::physical_suffix(12));
                n.truncate(64);
                n
            })
            .clone()
    }

    async fn create_function_user(&self, logical_id: &str, f: &FunctionFacts) -> User {
        let has_sqs = f.events.iter().any(|e| e.kind == "SQS");
        let statements = policy::moto_statements(&f.statements, &self.table_arn, has_sqs);
        let key = serde_json::to_string(&statements).expect("statements serialise");
        let mut users = self.users.lock().await;
        if let Some(u) = users.get(&key) {
            return u.clone();
        }
        let name = format!("{}-{logical_id}-{}", self.name, users.len());
        let user = create_user(&self.http, &self.endpoint, &name, &statements).await;
        users.insert(key, user.clone());
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).insert(user.access_key_id.clone(), user.clone());
        user
    }

    /// The user for `f`'s statements, made in a window without enforcement if it is new.
    async fn user_for(&self, logical_id: &str, f: &FunctionFacts) -> User {
        let has_sqs = f.events.iter().any(|e| e.kind == "SQS");
        let statements = policy::moto_statements(&f.statements, &self.table_arn, has_sqs);
        let key = serde_json::to_string(&statements).expect("statements serialise");
        if let Some(u) = self.users.lock().await.get(&key) {
            return u.clone();
        }
        let _window = self.gate.write().await;
        set_enforcement(&self.http, &self.endpoint, false).await;
        let user = self.create_function_user(logical_id, f).await;
        set_enforcement(&self.http, &self.endpoint, true).await;
        user
    }

    /// Starts the function `logical_id` as the template deploys it.
    pub async fn spawn(&self, logical_id: &str) -> Lambda {
        self.spawn_with(logical_id, |_| {}).await
    }

    /// Starts the function `logical_id` with its facts changed by `tweak` first (a statement
    /// or a variable taken away, to show that the suite notices).
    pub async fn spawn_with(&self, logical_id: &str, tweak: impl FnOnce(&mut FunctionFacts)) -> Lambda {
        let mut facts = self.facts.function(logical_id).clone();
        tweak(&mut facts);
        let user = self.user_for(logical_id, &facts).await;
        let binary = self.binary_path(&facts.binary);
        let function_name = self.function_name(logical_id);
        let mut env: BTreeMap<String, String> = facts.environment.clone();
        let today = OffsetDateTime::now_utc().date();
        // What Lambda itself sets, next to the template's variables; and the endpoint that
        // points the SDK at moto. Nothing comes from this process's environment.
        let lambda_env = [
            ("AWS_LAMBDA_FUNCTION_NAME", function_name.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", facts.memory.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function_name}")),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!(
                    "{}/{:02}/{:02}/[$LATEST]{}",
                    today.year(),
                    today.month() as u8,
                    today.day(),
                    events::random_hex(16)
                ),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", user.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", user.secret_access_key.clone()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("_HANDLER", "bootstrap".into()),
            ("LAMBDA_TASK_ROOT", "/var/task".into()),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
            ("TZ", ":UTC".into()),
            ("LANG", "en_US.UTF-8".into()),
            ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
        ];
        for (k, v) in lambda_env {
            debug_assert!(LAMBDA_VARIABLES.contains(&k), "{k} is missing from LAMBDA_VARIABLES");
            if env.insert(k.to_owned(), v).is_some() {
                panic!("{logical_id}: template.yaml sets {k}, which Lambda reserves (a deployment would fail)");
            }
        }
        Lambda::start(Launch {
            logical_id: logical_id.to_owned(),
            arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"),
            function_name,
            binary,
            facts,
            env,
            api: self.api.clone(),
            gate: self.gate.clone(),
        })
        .await
    }

    /// Where the function binaries are: `$CARGO_TARGET_DIR` (or the workspace's `target/`),
    /// `debug/<binary>`, or `release/<binary>` when `IMGHOST_FUNCTION_PROFILE=release` (to
    /// measure cold starts of the optimised binaries). The harness never builds them.
    pub fn binary_path(&self, binary: &str) -> PathBuf {
        let profile = std::env::var("IMGHOST_FUNCTION_PROFILE").unwrap_or_else(|_| "debug".into());
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                if dir.is_relative() { facts::workspace_root().join(dir) } else { dir }
            }
            None => facts::workspace_root().join("target"),
        };
        let path = target.join(&profile).join(binary);
        if !path.is_file() {
            let packages: Vec<String> =
                self.facts.functions.values().map(|f| format!("-p {}", f.binary)).collect::<Vec<_>>();
            panic!(
                "the function binary {} is missing: build the functions first with `cargo build{} {}`",
                path.display(),
                if profile == "release" { " --release" } else { "" },
                packages.join(" ")
            );
        }
        path
    }

    /// The queue with this logical id.
    pub fn queue(&self, logical_id: &str) -> &Queue {
        self.queues.get(logical_id).unwrap_or_else(|| panic!("template.yaml declares no queue {logical_id}"))
    }

    fn queue_by_arn(&self, arn: &str) -> &Queue {
        self.queues.values().find(|q| q.arn == arn).unwrap_or_else(|| panic!("no queue has the ARN {arn}"))
    }

    // -----------------------------------------------------------------------------------------
    // S3
    // -----------------------------------------------------------------------------------------

    /// Whether the bucket holds `key` (asked as the harness's admin).
    pub async fn object_exists(&self, key: &str) -> bool {
        match self.s3.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(_) => true,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => false,
            Err(e) => panic!("HeadObject {key}: {}", aws_sdk_s3::error::DisplayErrorContext(e)),
        }
    }

    /// The keys under `prefix`. The whole bucket is listed and filtered here: moto's signature
    /// check fails on a query string with percent-encoded characters such as `prefix=a%2Fb`.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap_or_else(|e| panic!("ListObjectsV2: {}", aws_sdk_s3::error::DisplayErrorContext(e)));
            keys.extend(
                out.contents().iter().filter_map(|o| o.key()).filter(|k| k.starts_with(prefix)).map(str::to_owned),
            );
            match out.next_continuation_token() {
                Some(t) => token = Some(t.to_owned()),
                None => return keys,
            }
        }
    }

    /// Delivers the bucket notification for the new object `key` to `lambda`, as S3 invokes
    /// it: only if one of the function's S3 event sources has a prefix `key` starts with.
    /// `event_name` is `ObjectCreated:Put` for an SDK put, `ObjectCreated:Post` for a form.
    pub async fn notify(&self, lambda: &Lambda, key: &str, event_name: &str) -> Result<Value, InvokeError> {
        let source = lambda
            .facts
            .events
            .iter()
            .find(|e| e.kind == "S3" && e.prefix.as_deref().is_some_and(|p| key.starts_with(p)))
            .unwrap_or_else(|| panic!("the bucket notification does not invoke {} for {key}", lambda.logical_id));
        let event = self.object_created_event(key, event_name, &source.name).await;
        lambda.invoke(event).await
    }

    /// The S3 event for the object `key` as it is in the bucket now (its size and ETag), sent by
    /// the notification configuration `configuration_id`.
    pub async fn object_created_event(&self, key: &str, event_name: &str, configuration_id: &str) -> Value {
        let head = self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("HeadObject {key}: {}", aws_sdk_s3::error::DisplayErrorContext(e)));
        let principal = format!("AWS:{}", self.admin.user_id);
        ObjectCreated {
            region: REGION,
            bucket: &self.bucket,
            key,
            size: head.content_length().unwrap_or(0),
            etag: head.e_tag().unwrap_or_default(),
            event_name,
            configuration_id,
            principal: &principal,
        }
        .event()
    }

    /// Posts a presigned upload form (`{"url", "fields", "file_field"}`) as a browser would:
    /// the fields in their order, the file last. S3 checks the form before storing the file
    /// (see the crate docs for why the harness does that on moto's behalf); the answer is the
    /// status and body, moto's or the refusal S3 would give.
    pub async fn post_form(&self, form: &Value, file: Vec<u8>, content_type: &str) -> (u16, String) {
        let url = form["url"].as_str().expect("the form's url");
        let fields = form["fields"].as_object().expect("the form's fields");
        let file_field = form["file_field"].as_str().unwrap_or("file");
        let bucket = url.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        let strings: Vec<(String, String)> =
            fields.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect();
        if let Err(refusal) = self.check_post_policy(bucket, &strings, file.len() as u64) {
            return refusal;
        }
        let mut multipart = reqwest::multipart::Form::new();
        for (k, v) in &strings {
            multipart = multipart.text(k.clone(), v.clone());
        }
        let part =
            reqwest::multipart::Part::bytes(file).file_name("upload").mime_str(content_type).expect("a content type");
        multipart = multipart.part(file_field.to_owned(), part);
        // moto cannot authenticate a form (see the crate docs): it was checked above, and moto
        // takes it in a window without enforcement, which no function request can share.
        let _window = self.gate.write().await;
        set_enforcement(&self.http, &self.endpoint, false).await;
        let resp = self.http.post(url).multipart(multipart).send().await;
        set_enforcement(&self.http, &self.endpoint, true).await;
        let resp = resp.expect("the form POST reaches moto");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// What S3 checks of a POST policy form before it stores the file: the signature (by the
    /// secret of the access key named in the credential), the expiry, every condition, no field
    /// outside the conditions, and that the signer may `s3:PutObject` the key.
    fn check_post_policy(&self, bucket: &str, fields: &[(String, String)], size: u64) -> Result<(), (u16, String)> {
        let deny = |code: &str, message: String| {
            Err((403, format!("<Error><Code>{code}</Code><Message>{message}</Message></Error>")))
        };
        let field = |name: &str| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        let (Some(policy_b64), Some(signature), Some(credential)) =
            (field("policy"), field("x-amz-signature"), field("x-amz-credential"))
        else {
            return Err((400, "<Error><Code>InvalidArgument</Code><Message>a signed form needs policy, x-amz-signature and x-amz-credential</Message></Error>".into()));
        };
        let parts: Vec<&str> = credential.split('/').collect();
        let [akid, date, region, "s3", "aws4_request"] = parts.as_slice() else {
            return Err((
                400,
                format!("<Error><Code>InvalidArgument</Code><Message>bad credential {credential}</Message></Error>"),
            ));
        };
        let Some(user) = self.keys.lock().unwrap_or_else(|e| e.into_inner()).get(*akid).cloned() else {
            return deny("InvalidAccessKeyId", format!("no user has the access key {akid}"));
        };
        let key = imghost::uploads::signing_key(&user.secret_access_key, date, region, "s3");
        let expected = hex::encode(hmac_sha256(&key, policy_b64.as_bytes()));
        if expected != signature {
            return deny("SignatureDoesNotMatch", "the form's signature does not match its policy".into());
        }
        let policy: Value = STANDARD
            .decode(policy_b64)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or((400, "<Error><Code>InvalidPolicyDocument</Code></Error>".to_owned()))?;
        let expiration = policy["expiration"].as_str().and_then(|e| OffsetDateTime::parse(e, &Rfc3339).ok());
        if expiration.is_none_or(|e| e < OffsetDateTime::now_utc()) {
            return deny("AccessDenied", "Invalid according to Policy: Policy expired.".into());
        }
        let value_of = |name: &str| -> Option<String> {
            let name = name.trim_start_matches('$');
            if name.eq_ignore_ascii_case("bucket") { Some(bucket.to_owned()) } else { field(name).map(str::to_owned) }
        };
        let mut covered = vec!["bucket".to_owned()];
        for c in policy["conditions"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let ok = match c {
                Value::Object(o) => o.iter().all(|(k, v)| {
                    covered.push(k.to_ascii_lowercase());
                    value_of(k).as_deref() == v.as_str()
                }),
                Value::Array(a) => match (a.first().and_then(Value::as_str), a.get(1), a.get(2)) {
                    (Some("eq"), Some(Value::String(k)), Some(Value::String(v))) => {
                        covered.push(k.trim_start_matches('$').to_ascii_lowercase());
                        value_of(k).as_deref() == Some(v.as_str())
                    }
                    (Some("starts-with"), Some(Value::String(k)), Some(Value::String(v))) => {
                        covered.push(k.trim_start_matches('$').to_ascii_lowercase());
                        value_of(k).is_some_and(|x| x.starts_with(v.as_str()))
                    }
                    (Some("content-length-range"), Some(min), Some(max)) => {
                        (min.as_u64().unwrap_or(0)..=max.as_u64().unwrap_or(0)).contains(&size)
                    }
                    _ => false,
                },
                _ => false,
            };
            if !ok {
                return deny("AccessDenied", format!("Invalid according to Policy: Policy Condition failed: {c}"));
            }
        }
        let exempt = |k: &str| {
            let k = k.to_ascii_lowercase();
            k == "policy" || k == "x-amz-signature" || k == "file" || k.starts_with("x-ignore-")
        };
        if let Some((extra, _)) = fields.iter().find(|(k, _)| !exempt(k) && !covered.contains(&k.to_ascii_lowercase()))
        {
            return deny("AccessDenied", format!("Invalid according to Policy: Extra input fields: {extra}"));
        }
        let object = field("key").unwrap_or_default();
        if !policy::allows(&user.statements, "s3:PutObject", &format!("arn:aws:s3:::{bucket}/{object}")) {
            return deny("AccessDenied", format!("{} may not s3:PutObject {object}", user.name));
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // SQS
    // -----------------------------------------------------------------------------------------

    /// Sends a message to `queue` as the harness's admin.
    pub async fn send(&self, queue: &Queue, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&queue.url)
            .message_body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("SendMessage: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
    }

    /// Receives up to `max` messages of `queue`, with their system attributes, as the harness's
    /// admin (the event source mapping's poller).
    pub async fn receive(&self, queue: &Queue, max: u32) -> Vec<SqsMessage> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ReceiveMessage: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
        out.messages()
            .iter()
            .map(|m| SqsMessage {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                md5_of_body: m.md5_of_body().unwrap_or_default().to_owned(),
                attributes: m
                    .attributes()
                    .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// How many messages `queue` holds, visible or in flight.
    pub async fn depth(&self, queue: &Queue) -> u64 {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&queue.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetQueueAttributes: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
        let attrs = out.attributes().cloned().unwrap_or_default();
        [QueueAttributeName::ApproximateNumberOfMessages, QueueAttributeName::ApproximateNumberOfMessagesNotVisible]
            .iter()
            .filter_map(|a| attrs.get(a).and_then(|v| v.parse::<u64>().ok()))
            .sum()
    }

    /// Makes `messages` visible again at once, as if their visibility timeout had run out.
    pub async fn release(&self, queue: &Queue, messages: &[SqsMessage]) {
        for m in messages {
            self.sqs
                .change_message_visibility()
                .queue_url(&queue.url)
                .receipt_handle(&m.receipt_handle)
                .visibility_timeout(0)
                .send()
                .await
                .unwrap_or_else(|e| panic!("ChangeMessageVisibility: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
        }
    }

    /// The SQS event for `messages` received from `queue`.
    pub fn sqs_event(&self, queue: &Queue, messages: &[SqsMessage]) -> Value {
        events::sqs_event(REGION, &queue.arn, messages)
    }

    /// The SQS event source of `lambda` and its queue.
    pub fn sqs_source<'a>(&self, lambda: &'a Lambda) -> (&Queue, &'a EventSource) {
        let source = lambda
            .facts
            .events
            .iter()
            .find(|e| e.kind == "SQS")
            .unwrap_or_else(|| panic!("{} has no SQS event source", lambda.logical_id));
        (self.queue_by_arn(source.queue.as_deref().unwrap_or_default()), source)
    }

    /// One poll of `lambda`'s event source mapping: receive a batch (up to the source's batch
    /// size), invoke, and delete what succeeded. `None` when the queue had nothing.
    pub async fn poll(&self, lambda: &Lambda) -> Option<Polled> {
        let (queue, source) = self.sqs_source(lambda);
        let messages = self.receive(queue, source.batch_size.unwrap_or(10)).await;
        if messages.is_empty() {
            return None;
        }
        Some(self.deliver(lambda, messages).await)
    }

    /// Hands `messages` (received from `lambda`'s queue) to it as the event source mapping
    /// does, then deletes the ones that succeeded: all of them after a plain success; with
    /// `ReportBatchItemFailures`, those not listed (a list naming an id outside the batch fails
    /// it whole); none after a failed invocation.
    pub async fn deliver(&self, lambda: &Lambda, messages: Vec<SqsMessage>) -> Polled {
        let (queue, source) = self.sqs_source(lambda);
        let event = events::sqs_event(REGION, &queue.arn, &messages);
        let result = lambda.invoke(event).await;
        let all: Vec<String> = messages.iter().map(|m| m.message_id.clone()).collect();
        let failed = match &result {
            Err(_) => all.clone(),
            Ok(answer) if source.partial_batches.unwrap_or(false) => {
                let listed: Vec<String> = answer["batchItemFailures"]
                    .as_array()
                    .map(|a| a.iter().map(|f| f["itemIdentifier"].as_str().unwrap_or_default().to_owned()).collect())
                    .unwrap_or_default();
                if listed.iter().all(|id| all.contains(id)) { listed } else { all.clone() }
            }
            Ok(_) => Vec::new(),
        };
        for m in messages.iter().filter(|m| !failed.contains(&m.message_id)) {
            self.sqs
                .delete_message()
                .queue_url(&queue.url)
                .receipt_handle(&m.receipt_handle)
                .send()
                .await
                .unwrap_or_else(|e| panic!("DeleteMessage: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
        }
        Polled { messages, result, failed }
    }

    // -----------------------------------------------------------------------------------------
    // Schedules
    // -----------------------------------------------------------------------------------------

    /// The event `lambda`'s schedule rule sends it.
    pub fn scheduled_event(&self, lambda: &Lambda) -> Value {
        let source = lambda
            .facts
            .events
            .iter()
            .find(|e| e.kind == "Schedule")
            .unwrap_or_else(|| panic!("{} has no schedule", lambda.logical_id));
        let mut rule = format!("{}-{}{}-{}", self.name, lambda.logical_id, source.name, events::physical_suffix(12));
        rule.truncate(64);
        events::scheduled_event(REGION, ACCOUNT, &format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}"))
    }
}

/// Turns moto's IAM enforcement on (every request checked) or off (none checked).
async fn set_enforcement(http: &reqwest::Client, endpoint: &str, on: bool) {
    let resp = http
        .post(format!("{endpoint}/moto-api/reset-auth"))
        .body(if on { "0" } else { "inf" })
        .send()
        .await
        .expect("moto's reset-auth");
    assert!(resp.status().is_success(), "moto's reset-auth answered {}", resp.status());
}

/// One IAM query API call, made while enforcement is off (moto then checks no signature; the
/// credential scope only routes the request to IAM).
async fn iam(http: &reqwest::Client, endpoint: &str, params: &[(&str, &str)]) -> String {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Version", "2010-05-08")
        .extend_pairs(params)
        .finish();
    let resp = http
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=harness/20250101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body)
        .send()
        .await
        .expect("an IAM call to moto");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "IAM {params:?} answered {status}: {text}");
    text
}

fn xml_field(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("no <{tag}> in {xml}")) + open.len();
    let end = xml[start..].find(&format!("</{tag}>")).map(|e| start + e).unwrap_or(xml.len());
    xml[start..end].to_owned()
}

/// Makes an IAM user with `statements` as its one inline policy, and an access key for it.
async fn create_user(http: &reqwest::Client, endpoint: &str, name: &str, statements: &[Statement]) -> User {
    let created = iam(http, endpoint, &[("Action", "CreateUser"), ("UserName", name)]).await;
    // A role without policies (the web function's) is a user without one.
    if !statements.is_empty() {
        let document = policy::document(statements).to_string();
        iam(
            http,
            endpoint,
            &[
                ("Action", "PutUserPolicy"),
                ("UserName", name),
                ("PolicyName", "template"),
                ("PolicyDocument", &document),
            ],
        )
        .await;
    }
    let key = iam(http, endpoint, &[("Action", "CreateAccessKey"), ("UserName", name)]).await;
    User {
        name: name.to_owned(),
        user_id: xml_field(&created, "UserId"),
        access_key_id: xml_field(&key, "AccessKeyId"),
        secret_access_key: xml_field(&key, "SecretAccessKey"),
        statements: statements.to_vec(),
    }
}

/// Makes the template's queues, dead-letter queues first, with the template's visibility
/// timeout, retention and redrive policy.
async fn make_queues(sqs: &aws_sdk_sqs::Client, stack: &str) -> BTreeMap<String, Queue> {
    let mut decls = facts::template_queues();
    // Dead-letter targets before the queues that name them.
    decls.sort_by_key(|d| d.redrive.is_some());
    let mut made: BTreeMap<String, Queue> = BTreeMap::new();
    for d in decls {
        let name = format!("{stack}-{}-{}", d.logical_id, events::physical_suffix(12));
        let mut req = sqs.create_queue().queue_name(&name);
        if let Some(v) = d.visibility_timeout {
            req = req.attributes(QueueAttributeName::VisibilityTimeout, v.to_string());
        }
        if let Some(r) = d.retention {
            req = req.attributes(QueueAttributeName::MessageRetentionPeriod, r.to_string());
        }
        if let Some((dlq, max)) = &d.redrive {
            let target = made.get(dlq).unwrap_or_else(|| panic!("{}: no dead-letter queue {dlq}", d.logical_id));
            let policy = json!({"deadLetterTargetArn": target.arn, "maxReceiveCount": max}).to_string();
            req = req.attributes(QueueAttributeName::RedrivePolicy, policy);
        }
        let url = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateQueue {name}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))
            .queue_url
            .expect("a queue URL");
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("the queue's attributes")
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .expect("the queue's ARN");
        made.insert(d.logical_id.clone(), Queue { logical_id: d.logical_id, name, url, arn });
    }
    made
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn credentials(user: &User) -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(&user.access_key_id, &user.secret_access_key, None, None, "harness")
}

fn s3_client(endpoint: &str, user: &User) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(credentials(user))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

fn sqs_client(endpoint: &str, user: &User) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_sqs::config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(credentials(user))
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

fn dynamodb_client(endpoint: &str, user: &User) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_dynamodb::config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(credentials(user))
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}
