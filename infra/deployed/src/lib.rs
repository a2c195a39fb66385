//! The deployed shape, end to end, on one machine: every Lambda function's real binary runs as
//! its own process under a Lambda Runtime API emulator ([`runtime`]), with exactly the
//! environment `template.yaml` gives it and AWS credentials of an IAM user that carries exactly
//! its template policies, against `moto_server` with IAM enforcement on ([`stack`]). A missing
//! permission or variable then fails here as it would in AWS.
//!
//! What the template gives each function comes from `scripts/template-facts` alone
//! ([`facts`]); the harness never repeats a variable or a statement. The harness plays the AWS
//! services that stand between the functions: API Gateway (payload 2.0 events and answers), the
//! bucket notification (S3 events), the SQS event source mapping (receive, invoke, delete what
//! succeeded) and the EventBridge schedule ([`events`]).
//!
//! # moto divergences, and how the harness handles each
//!
//! Each is derived from the template's statements, never a blanket allow ([`policy`]).
//!
//! 1. **DynamoDB and SSM are authorised against resource `"*"`.** moto's responses for these
//!    services have no `_determine_resource`, so `core/responses.py` checks every action against
//!    `"*"`, and a statement naming a table or parameter ARN never matches. The harness rewrites
//!    the Resource of DynamoDB and SSM statements to `"*"` in the moto policy (S3 and SQS compute
//!    real resource ARNs and keep theirs). Consequence: the suite does not notice a statement on
//!    the wrong table, index or parameter ARN; it does notice a missing action.
//! 2. **`TransactWriteItems` is an IAM action in moto.** moto names the action after the API
//!    operation; AWS has no such IAM action and authorises each item's Put/Update/Delete/
//!    ConditionCheck. The harness adds `dynamodb:TransactWriteItems` exactly when the statements
//!    allow all four per-item actions on the table. (With only some of them, moto refuses every
//!    transaction, which is stricter than AWS: a loud failure, never a false pass.)
//! 3. **SQS batch operations are their own actions in moto.** AWS authorises
//!    `SendMessageBatch`, `DeleteMessageBatch` and `ChangeMessageVisibilityBatch` as
//!    `SendMessage`, `DeleteMessage` and `ChangeMessageVisibility`; moto checks the batch name.
//!    The harness allows a batch action wherever its single action is allowed (the template's
//!    `SQSSendMessagePolicy` grants `sqs:SendMessage*`, which covers it anyway).
//! 4. **SAM's implicit policies are not in the facts.** A function with an SQS event source gets
//!    SAM's `AWSLambdaSQSQueueExecutionRole` (`sqs:ReceiveMessage`, `sqs:DeleteMessage`,
//!    `sqs:GetQueueAttributes` on `"*"`, plus logs); the harness adds those SQS actions to such a
//!    function's moto policy, derived from its SQS events. (The functions make none of those
//!    calls themselves today: the harness plays the poller, as its own admin user.) Logs and
//!    X-Ray are not called through moto and not granted.
//! 5. **Conditions are dropped, and KMS is never asked.** `template-facts` does not carry
//!    statement conditions, and moto's SSM decrypts a SecureString without a KMS call or check,
//!    so the `kms:Decrypt` statement of `AdminTokenReadPolicy` is granted as the facts give it
//!    (Resource `"*"`) and is not exercised: removing it would go unnoticed here.
//! 6. **A browser's POST form is not authenticated by moto.** S3 checks a presigned POST by its
//!    policy and signature, and authorises `s3:PutObject` on the object key for the signer.
//!    moto's `_bucket_response_post` instead runs its header-signature check against the bucket
//!    ARN: with enforcement on it looks for an `Authorization` header a form does not have and
//!    answers 500, and with enforcement off it stores any form unchecked. The harness
//!    checks the form as S3 does ([`stack::Stack::post_form`]: signature with the signing user's
//!    secret, expiry, every condition, no extra field, and the signer's `s3:PutObject` on the key
//!    by its moto policy), then lets moto store it in a window without enforcement that no
//!    function request can share (a lock every invocation holds for reading).
//! 7. **A missing S3 key is a 404 whatever the policy.** AWS answers 403 to a GetObject or
//!    HeadObject of a missing key when the caller lacks `s3:ListBucket`; moto answers 404. The
//!    suite therefore does not notice a missing `s3:ListBucket` (the template grants it where
//!    the code tells a missing key from a denial).
//! 8. **moto's SigV4 check misreads some query strings.** Under its werkzeug server, moto
//!    recomputes the signature over a query string in which `%2F` has been decoded to `/`, so a
//!    correctly signed `ListObjectsV2` with `prefix=a/b` fails with `SignatureDoesNotMatch`. No
//!    function sends such a query (their S3 calls carry the key in the path); the harness's own
//!    listing ([`stack::Stack::keys`]) lists the bucket without a prefix and filters.
//! 9. **Everything else moto matches as IAM does, with nuances that do not matter for the
//!    template:** moto matches actions case-sensitively and turns `*` into a regular expression
//!    without escaping the rest of the pattern.
//!
//! The distribution is played too, for images only ([`edge`]): its CloudFront Function,
//! `cdn/images.js`, runs under Node and picks the bucket origins and path, and the harness reads
//! the keys that names, failing over as the origin group does. API requests are sent to the
//! functions as API Gateway would, with the `X-Forwarded-Host` that `cdn/api.js` sets where a
//! test says the request came through the distribution.
//!
//! Enforcement is switched with moto's `POST /moto-api/reset-auth` (`inf`: nothing checked,
//! `0`: everything checked). The stack is made with it off, then it is on for good, except in
//! the short windows where the harness makes a user for a changed policy or hands a checked form
//! to moto (6): every invocation, and every process's init, holds a shared lock those windows
//! take exclusively, so a function's request is never let through unchecked.
//!
//! The Lambda environment differs from AWS only in what cannot be emulated: the processes run on
//! this machine's architecture (not arm64), without AWS's sandbox, with the functions' plain-text
//! logs (`AWS_LAMBDA_LOG_FORMAT` comes from `LoggingConfig`, which the facts do not carry), and
//! with long-term user keys instead of a role's session credentials.
//!
//! Set `IMGHOST_DEPLOYED_ECHO=1` to see every function's output as it runs (it is otherwise kept,
//! and its tail shown in an [`InvokeError`]).

#[path = "../../../shared/tests/support/mod.rs"]
pub mod support;

pub mod edge;
pub mod events;
pub mod facts;
pub mod policy;
pub mod runtime;
pub mod stack;

pub use events::{HttpRequest, HttpResponse, SqsMessage};
pub use runtime::{InvokeError, Lambda, Timings};
pub use stack::{Queue, Stack};

/// Prints each function's init and first-invocation times, for `docs/benchmarks.md`.
pub fn print_timings(lambdas: &[&Lambda]) {
    eprintln!("[deployed] {:<28} {:>10} {:>22}", "function", "init (ms)", "first invocation (ms)");
    for l in lambdas {
        let t = l.timings();
        let ms = |d: Option<std::time::Duration>| d.map_or("-".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1e3));
        eprintln!("[deployed] {:<28} {:>10} {:>22}", l.logical_id, ms(t.init), ms(t.first_invocation));
    }
}
