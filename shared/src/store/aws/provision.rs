//! Creates the resources the AWS family expects, for tests and test harnesses against moto or
//! another AWS-compatible endpoint. In AWS itself the template creates them.
//!
//! Behind the crate's `provision` feature, which only those enable (`imghost`'s own tests, the
//! migrate tests of `infra/local` and the `infra/deployed` harness): no Lambda function creates
//! resources, so none links this code.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus,
};

use super::sdk_err;
use crate::store::{GSI1, GSI1PK, GSI1SK, PK, SK, StoreError, StoreResult};

/// How long to wait for a new table to become active (real DynamoDB takes seconds).
const TABLE_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Creates the single table (keys `pk`/`sk`, index `gsi1` on `gsi1pk`/`gsi1sk` projecting all
/// attributes, on-demand billing) unless it exists, and waits until it and its index are active.
pub async fn ensure_table(client: &aws_sdk_dynamodb::Client, name: &str) -> StoreResult<()> {
    let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::backend(format!("table definition: {e}"));
    let key = |attr: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(attr).key_type(kind).build();
    let def =
        |attr: &str| AttributeDefinition::builder().attribute_name(attr).attribute_type(ScalarAttributeType::S).build();
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key(GSI1PK, KeyType::Hash).map_err(build)?)
        .key_schema(key(GSI1SK, KeyType::Range).map_err(build)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(build)?;
    let res = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash).map_err(build)?)
        .key_schema(key(SK, KeyType::Range).map_err(build)?)
        .attribute_definitions(def(PK).map_err(build)?)
        .attribute_definitions(def(SK).map_err(build)?)
        .attribute_definitions(def(GSI1PK).map_err(build)?)
        .attribute_definitions(def(GSI1SK).map_err(build)?)
        .global_secondary_indexes(gsi)
        .send()
        .await;
    match res {
        Ok(_) => tracing::info!(table = name, "created table"),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(sdk_err("dynamodb CreateTable", e)),
    }

    let deadline = tokio::time::Instant::now() + TABLE_READY_TIMEOUT;
    loop {
        let out =
            client.describe_table().table_name(name).send().await.map_err(|e| sdk_err("dynamodb DescribeTable", e))?;
        let ready = out.table().is_some_and(|t| {
            t.table_status() == Some(&TableStatus::Active)
                && t.global_secondary_indexes().iter().all(|i| i.index_status() == Some(&IndexStatus::Active))
        });
        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::backend(format!("table {name} did not become active")));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Creates the bucket unless this account already owns it.
pub async fn ensure_bucket(client: &aws_sdk_s3::Client, name: &str) -> StoreResult<()> {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let mut req = client.create_bucket().bucket(name);
    // us-east-1 is the one region where S3 refuses a location constraint.
    if let Some(region) = client.config().region().map(|r| r.as_ref().to_owned())
        && region != "us-east-1"
    {
        let cfg = CreateBucketConfiguration::builder()
            .location_constraint(BucketLocationConstraint::from(region.as_str()))
            .build();
        req = req.create_bucket_configuration(cfg);
    }
    match req.send().await {
        Ok(_) => {
            tracing::info!(bucket = name, "created bucket");
            Ok(())
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => Ok(()),
        Err(e) => Err(sdk_err("s3 CreateBucket", e)),
    }
}

/// Creates the queue unless it exists, and returns its URL.
pub async fn ensure_queue(client: &aws_sdk_sqs::Client, name: &str) -> StoreResult<String> {
    // CreateQueue is idempotent for an existing queue with the same attributes.
    let out = client.create_queue().queue_name(name).send().await.map_err(|e| sdk_err("sqs CreateQueue", e))?;
    out.queue_url().map(str::to_owned).ok_or_else(|| StoreError::backend("sqs CreateQueue returned no queue URL"))
}
