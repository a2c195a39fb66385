//! From a function's template statements to the inline policy its moto IAM user gets, with the
//! rewrites moto's authorisation model needs (each documented in the crate docs), and a policy
//! evaluator with IAM's matching rules for the checks the harness makes itself.

use crate::facts::Statement;

/// Services whose moto responses have no `_determine_resource`: moto checks their actions
/// against resource `"*"`, so a statement naming a specific ARN never matches there.
const STAR_RESOURCE_SERVICES: [&str; 2] = ["dynamodb", "ssm"];

/// The actions AWS authorises one by one for the items of a `TransactWriteItems`.
pub const TRANSACT_ITEM_ACTIONS: [&str; 4] =
    ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"];

/// Batch operations AWS authorises as their single-message action, and moto as their own name.
const BATCH_ALIASES: [(&str, &str); 3] = [
    ("sqs:SendMessage", "sqs:SendMessageBatch"),
    ("sqs:DeleteMessage", "sqs:DeleteMessageBatch"),
    ("sqs:ChangeMessageVisibility", "sqs:ChangeMessageVisibilityBatch"),
];

/// What SAM's `AWSLambdaSQSQueueExecutionRole` (attached to every function with an SQS event
/// source) allows, without its CloudWatch Logs actions.
pub const SQS_POLLER_ACTIONS: [&str; 3] = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"];

/// The policy moto enforces for a function whose template role has `statements`.
///
/// - DynamoDB and SSM statements get Resource `"*"` (moto checks those services against `"*"`);
/// - `dynamodb:TransactWriteItems` is allowed exactly when the statements allow every
///   per-item action on `table_arn` (moto checks the operation's name, AWS each item);
/// - an SQS batch action is allowed wherever its single-message action is;
/// - `has_sqs_event` adds SAM's implicit poller policy (sqs:ReceiveMessage, DeleteMessage,
///   GetQueueAttributes on `"*"`), which the template's SQS event sources bring.
pub fn moto_statements(statements: &[Statement], table_arn: &str, has_sqs_event: bool) -> Vec<Statement> {
    let mut base: Vec<Statement> = statements.to_vec();
    if has_sqs_event {
        base.push(Statement {
            effect: "Allow".into(),
            action: SQS_POLLER_ACTIONS.iter().map(|a| a.to_string()).collect(),
            resource: vec!["*".into()],
        });
    }
    let mut out = Vec::new();
    for s in &base {
        // Split by service so that only DynamoDB and SSM actions lose their resources.
        let (star, kept): (Vec<String>, Vec<String>) =
            s.action.iter().cloned().partition(|a| STAR_RESOURCE_SERVICES.contains(&service_of(a).as_str()));
        let mut kept = kept;
        for (single, batch) in BATCH_ALIASES {
            if action_matches_any(&kept, single) && !action_matches_any(&kept, batch) {
                kept.push(batch.to_owned());
            }
        }
        if !star.is_empty() {
            out.push(Statement { effect: s.effect.clone(), action: star, resource: vec!["*".into()] });
        }
        if !kept.is_empty() {
            out.push(Statement { effect: s.effect.clone(), action: kept, resource: s.resource.clone() });
        }
    }
    if TRANSACT_ITEM_ACTIONS.iter().all(|a| allows(statements, a, table_arn)) {
        out.push(Statement {
            effect: "Allow".into(),
            action: vec!["dynamodb:TransactWriteItems".into()],
            resource: vec!["*".into()],
        });
    }
    out
}

/// The policy document of `statements`.
pub fn document(statements: &[Statement]) -> serde_json::Value {
    serde_json::json!({"Version": "2012-10-17", "Statement": statements})
}

fn service_of(action: &str) -> String {
    action.split(':').next().unwrap_or_default().to_ascii_lowercase()
}

fn action_matches_any(patterns: &[String], action: &str) -> bool {
    patterns.iter().any(|p| glob(&p.to_ascii_lowercase(), &action.to_ascii_lowercase()))
}

/// Whether `statements` allow `action` on `resource` under IAM's rules: an explicit deny wins,
/// else some allow must match. Actions match case-insensitively, resources case-sensitively,
/// both with `*` and `?` wildcards.
pub fn allows(statements: &[Statement], action: &str, resource: &str) -> bool {
    let applies = |s: &Statement| action_matches_any(&s.action, action) && s.resource.iter().any(|r| glob(r, resource));
    let mut allowed = false;
    for s in statements.iter().filter(|s| applies(s)) {
        if s.effect.eq_ignore_ascii_case("deny") {
            return false;
        }
        allowed |= s.effect.eq_ignore_ascii_case("allow");
    }
    allowed
}

/// IAM's wildcard match: `*` any run of characters, `?` any one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(action: &[&str], resource: &[&str]) -> Statement {
        Statement {
            effect: "Allow".into(),
            action: action.iter().map(|s| s.to_string()).collect(),
            resource: resource.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(glob("arn:aws:s3:::b/variants/*", "arn:aws:s3:::b/variants/x/small.jpg"));
        assert!(!glob("arn:aws:s3:::b/variants/*", "arn:aws:s3:::b/originals/x.jpg"));
        assert!(glob("sqs:sendmessage*", "sqs:sendmessagebatch"));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
        assert!(glob("*", "") && !glob("", "x"));
    }

    #[test]
    fn dynamodb_and_ssm_lose_their_resources_and_transactions_follow_item_actions() {
        let table = "arn:aws:dynamodb:us-east-1:123456789012:table/t";
        let rw = st(
            &TRANSACT_ITEM_ACTIONS.iter().copied().chain(["dynamodb:GetItem", "s3:GetObject"]).collect::<Vec<_>>(),
            &[table, "arn:aws:s3:::b/*"],
        );
        let out = moto_statements(std::slice::from_ref(&rw), table, false);
        assert!(allows(&out, "dynamodb:GetItem", "*"));
        assert!(allows(&out, "dynamodb:TransactWriteItems", "*"));
        assert!(allows(&out, "s3:GetObject", "arn:aws:s3:::b/k"));
        assert!(!allows(&out, "s3:GetObject", "*"), "S3 keeps its resources");
        let read = st(&["dynamodb:GetItem", "dynamodb:Query"], &[table]);
        let out = moto_statements(&[read], table, false);
        assert!(!allows(&out, "dynamodb:TransactWriteItems", "*"));
        assert!(!allows(&out, "dynamodb:PutItem", "*"));
    }

    #[test]
    fn batch_actions_follow_their_single_actions() {
        let q = "arn:aws:sqs:us-east-1:123456789012:q";
        let out = moto_statements(&[st(&["sqs:ChangeMessageVisibility"], &[q])], "t", false);
        assert!(allows(&out, "sqs:ChangeMessageVisibilityBatch", q));
        assert!(!allows(&out, "sqs:SendMessageBatch", q));
        let out = moto_statements(&[], "t", true);
        assert!(allows(&out, "sqs:DeleteMessageBatch", q) && allows(&out, "sqs:ReceiveMessage", q));
    }

    #[test]
    fn a_deny_wins() {
        let mut deny = st(&["s3:*"], &["*"]);
        deny.effect = "Deny".into();
        assert!(!allows(&[st(&["s3:PutObject"], &["*"]), deny], "s3:PutObject", "arn:aws:s3:::b/k"));
    }
}
