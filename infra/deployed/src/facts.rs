//! What `template.yaml` gives each function, read through `scripts/template-facts` (the one
//! source of that: the harness never repeats an environment variable or a policy by hand), and
//! the SQS queues the template declares.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The workspace root (where `template.yaml` and `scripts/` live).
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Everything `scripts/template-facts` prints.
#[derive(Debug, Clone, Deserialize)]
pub struct Facts {
    pub functions: BTreeMap<String, FunctionFacts>,
    pub cdn: CdnFacts,
}

/// The distribution, as far as the harness serves images through it.
#[derive(Debug, Clone, Deserialize)]
pub struct CdnFacts {
    /// By origin id.
    pub origins: BTreeMap<String, Origin>,
    /// In the order CloudFront matches them; the default last, with the pattern `*`.
    pub behaviours: Vec<Behaviour>,
}

/// One origin of the distribution.
#[derive(Debug, Clone, Deserialize)]
pub struct Origin {
    /// `s3` or `custom`.
    pub kind: String,
    /// The origin path, prefixed to every request path sent to it.
    pub path: String,
}

/// One cache behaviour of the distribution.
#[derive(Debug, Clone, Deserialize)]
pub struct Behaviour {
    pub pattern: String,
    /// The origin id requests go to unless its function selects others.
    pub target: String,
}

/// One function as the template defines it, intrinsics resolved.
#[derive(Debug, Clone, Deserialize)]
pub struct FunctionFacts {
    /// The crate's binary (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    /// MemorySize in MB.
    pub memory: u32,
    /// Timeout in seconds.
    pub timeout: u64,
    /// The environment, Globals merged in.
    #[serde(deserialize_with = "string_map")]
    pub environment: BTreeMap<String, String>,
    /// The IAM statements of the function's role.
    pub statements: Vec<Statement>,
    /// HTTP API routes, `[method, path]`.
    pub routes: Vec<(String, String)>,
    /// Other event sources.
    pub events: Vec<EventSource>,
}

/// One IAM statement (conditions are not part of the facts).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "Effect")]
    pub effect: String,
    #[serde(rename = "Action")]
    pub action: Vec<String>,
    #[serde(rename = "Resource")]
    pub resource: Vec<String>,
}

/// A non-HTTP event source of a function.
#[derive(Debug, Clone, Deserialize)]
pub struct EventSource {
    pub name: String,
    /// `S3`, `SQS`, `Schedule`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// S3: the key prefix of the notification filter.
    #[serde(default)]
    pub prefix: Option<String>,
    /// SQS: the queue's ARN.
    #[serde(default)]
    pub queue: Option<String>,
    /// SQS: the batch size.
    #[serde(default)]
    pub batch_size: Option<u32>,
    /// SQS: whether the function answers partial batch responses (`ReportBatchItemFailures`).
    #[serde(default)]
    pub partial_batches: Option<bool>,
}

fn string_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, Value>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// Runs `scripts/template-facts` with `values` (see the script for their shape).
pub fn template_facts(values: &Value) -> Facts {
    let root = workspace_root();
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file for the template values");
    file.write_all(values.to_string().as_bytes()).expect("write the template values");
    let out = Command::new("python3")
        .arg("scripts/template-facts")
        .arg(file.path())
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("could not run python3 scripts/template-facts in {}: {e}", root.display()));
    assert!(
        out.status.success(),
        "scripts/template-facts failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "scripts/template-facts printed something that is not its JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

impl Facts {
    /// Every `<Name>` the script could not resolve, in the functions' environments and
    /// statements: the harness provides every value a function reads, so any is a gap.
    pub fn unresolved(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (name, f) in &self.functions {
            let texts = f
                .environment
                .iter()
                .map(|(k, v)| (format!("{name} environment {k}"), v.as_str()))
                .chain(
                    f.statements.iter().flat_map(|s| {
                        s.resource.iter().map(move |r| (format!("{name} statement resource"), r.as_str()))
                    }),
                )
                .chain(f.events.iter().filter_map(|e| e.queue.as_deref().map(|q| (format!("{name} event queue"), q))));
            for (place, text) in texts {
                if let Some(start) = text.find('<')
                    && text[start..].contains('>')
                {
                    found.push(format!("{place}: {text}"));
                }
            }
        }
        found
    }

    /// The function with this logical id, or a panic naming the ones there are.
    pub fn function(&self, logical_id: &str) -> &FunctionFacts {
        self.functions.get(logical_id).unwrap_or_else(|| {
            panic!("template.yaml has no function {logical_id}; it has {:?}", self.functions.keys().collect::<Vec<_>>())
        })
    }
}

/// An SQS queue as the template declares it: the attributes the harness gives the queue on
/// moto, and the queue its redrive policy sends dead letters to.
#[derive(Debug, Clone)]
pub struct QueueDecl {
    pub logical_id: String,
    pub visibility_timeout: Option<u64>,
    pub retention: Option<u64>,
    /// (logical id of the dead-letter queue, maxReceiveCount)
    pub redrive: Option<(String, u64)>,
}

/// The `AWS::SQS::Queue` resources of `template.yaml`. `scripts/template-facts` covers functions
/// only, so this reads the queue resources with the same YAML reading (PyYAML, CloudFormation's
/// short-form tags kept as data).
pub fn template_queues() -> Vec<QueueDecl> {
    const READ_QUEUES: &str = r#"
import json, yaml
class Loader(yaml.SafeLoader):
    pass
def tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"!" + suffix: value}
Loader.add_multi_constructor("!", tagged)
template = yaml.load(open("template.yaml"), Loader=Loader)
queues = {name: r.get("Properties", {}) for name, r in template["Resources"].items() if r.get("Type") == "AWS::SQS::Queue"}
print(json.dumps(queues))
"#;
    let root = workspace_root();
    let out = Command::new("python3")
        .arg("-c")
        .arg(READ_QUEUES)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("could not run python3 to read template.yaml: {e}"));
    assert!(out.status.success(), "reading the template's queues failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let queues: BTreeMap<String, Value> = serde_json::from_slice(&out.stdout).expect("the queues as JSON");
    let num = |v: &Value| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
    queues
        .into_iter()
        .map(|(logical_id, props)| {
            let redrive = props.get("RedrivePolicy").map(|r| {
                let target = &r["deadLetterTargetArn"];
                // `!GetAtt Name.Arn` or `{"Fn::GetAtt": [Name, Arn]}`.
                let dlq = target
                    .get("!GetAtt")
                    .and_then(Value::as_str)
                    .and_then(|s| s.strip_suffix(".Arn"))
                    .or_else(|| target.get("Fn::GetAtt").and_then(|a| a.get(0)).and_then(Value::as_str))
                    .unwrap_or_else(|| panic!("{logical_id}: a RedrivePolicy target the harness cannot read: {target}"))
                    .to_owned();
                let max = num(&r["maxReceiveCount"]).unwrap_or_else(|| panic!("{logical_id}: maxReceiveCount"));
                (dlq, max)
            });
            QueueDecl {
                visibility_timeout: props.get("VisibilityTimeout").and_then(num),
                retention: props.get("MessageRetentionPeriod").and_then(num),
                redrive,
                logical_id,
            }
        })
        .collect()
}
