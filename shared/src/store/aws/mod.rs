//! The AWS family: [`Objects`] on S3, [`Table`] on DynamoDB, [`Queue`] on SQS.
//!
//! Every adapter takes a ready SDK client, so the caller decides the endpoint, region and
//! credentials (the Lambda environment in production, moto in the contract tests).
//!
//! One file per service: `s3.rs` ([`S3Objects`]), `dynamo.rs` ([`DynamoTable`]) and `sqs.rs`
//! ([`SqsQueue`]), re-exported here so that callers name them `store::aws::S3Objects` and so
//! on. [`provision`], which creates the bucket, table and queue, is behind the crate's
//! `provision` feature: only tests and test harnesses create resources (in AWS the template
//! does), so the Lambda functions do not link it.
//!
//! [`Objects`]: super::Objects
//! [`Table`]: super::Table
//! [`Queue`]: super::Queue

mod dynamo;
#[cfg(feature = "provision")]
pub mod provision;
mod s3;
mod sqs;

pub use dynamo::DynamoTable;
pub use s3::S3Objects;
pub use sqs::SqsQueue;

use super::StoreError;

/// Describes an SDK error with its whole chain of causes; the top-level `Display` of an SDK
/// error is only "service error", which says nothing in a log.
fn sdk_err<E>(what: &str, e: E) -> StoreError
where
    E: std::error::Error,
{
    StoreError::backend(format!("{what}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))
}
