//! infra/template.yaml deployed into moto's CloudFormation (tests/it/deploy.rs).
//!
//! - [`translated`]: the SAM template translated offline by aws-sam-translator
//!   (`scripts/sam_translate.py`, run with `.work/sam-venv`'s python): every local `CodeUri` is
//!   [`CODE_URI`], every `DefinitionUri` inlined, parameters at their defaults.
//! - [`adapt_for_moto`]: what moto's CloudFormation cannot create is dropped ([`DROPPED`], each
//!   with its reason) and `AWS::IAM::RolePolicy` becomes the equivalent `AWS::IAM::Policy`
//!   ([`REWRITTEN`]); it reports exactly what it did, so the test can compare.
//! - [`Aws`]: AWS API calls signed (SigV4) with the caller's own credentials, through
//!   `tests/it/support/aws_calls.py` (boto3 in `.work/venv`): moto resolves the caller, and with
//!   `INITIAL_NO_AUTH_ACTION_COUNT` set checks its IAM policies, from the request's access key.
//! - [`start_enforcing_moto`] and [`bootstrap_admin`]: moto (through
//!   `tests/it/support/moto_deploy_server.py`, which runs `scripts/moto_server.py` with the
//!   corrections its doc lists) enforcing IAM from the [`BOOTSTRAP_CALLS`]-th request on; the
//!   first requests create the administrator everything else is signed as.
//! - [`deploy`]: CreateStack as that administrator, waiting for CREATE_COMPLETE.

use super::moto::{ACCOUNT, Moto, REGION};
use super::pipeline::root;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The stack's name (names of the sync state machine, the bus, the alias and log groups follow).
pub const STACK: &str = "ecr-promotion";
/// Where the functions' code package is (created in moto's S3 before CreateStack).
pub const CODE_BUCKET: &str = "ecr-promotion-artifacts";
/// The code package's key: a zip holding a placeholder `bootstrap` (moto never runs it).
pub const CODE_KEY: &str = "functions/bootstrap.zip";
/// `s3://CODE_BUCKET/CODE_KEY`, every function's `CodeUri`.
pub const CODE_URI: &str = "s3://ecr-promotion-artifacts/functions/bootstrap.zip";

/// Resources left out of the stack because moto 5.2.5's CloudFormation has no model for their
/// type (`moto/cloudformation/parsing.py` skips such a resource with a warning, and the stack
/// still reaches CREATE_COMPLETE): logical id, type, why. Nothing else in the stack refers to
/// them but `DependsOn`, which is dropped with them.
/// `deploy::moto_skips_exactly_what_the_harness_adapts` proves moto skips exactly these (and the
/// rewritten ones) when they are left in.
pub const DROPPED: [(&str, &str, &str); 6] = [
    (
        "ApprovalsRepositoryTemplate",
        "AWS::ECR::RepositoryCreationTemplate",
        "moto has neither the resource type nor the ECR creation-template API",
    ),
    (
        "EventsDeadLetterAlarm",
        "AWS::CloudWatch::Alarm",
        "moto's CloudFormation knows AWS::CloudWatch::Dashboard only",
    ),
    (
        "EventsDeadLetterQueuePolicy",
        "AWS::SQS::QueuePolicy",
        "moto's CloudFormation has no SQS queue policy type",
    ),
    (
        "PromotionEventBusPolicy",
        "AWS::Events::EventBusPolicy",
        "moto's CloudFormation has no event bus policy type",
    ),
    (
        "QuarantineRepositoryTemplate",
        "AWS::ECR::RepositoryCreationTemplate",
        "moto has neither the resource type nor the ECR creation-template API",
    ),
    (
        "TrustedRepositoryTemplate",
        "AWS::ECR::RepositoryCreationTemplate",
        "moto has neither the resource type nor the ECR creation-template API",
    ),
];

/// Resource types replaced by an equivalent moto can create: from, to, why. An
/// `AWS::IAM::RolePolicy` (`RoleName`, `PolicyName`, `PolicyDocument`) is the inline policy
/// `PolicyName` of that role, exactly what an `AWS::IAM::Policy` with `Roles: [RoleName]` makes
/// (both PutRolePolicy); moto has the second type only.
pub const REWRITTEN: [(&str, &str, &str); 1] = [(
    "AWS::IAM::RolePolicy",
    "AWS::IAM::Policy",
    "moto's CloudFormation has no AWS::IAM::RolePolicy; AWS::IAM::Policy with Roles: [RoleName] \
     puts the same inline policy on the same role",
)];

/// How many requests moto answers without authentication ([`bootstrap_admin`]'s).
pub const BOOTSTRAP_CALLS: usize = 3;
/// The IAM user the stack is created and inspected as (its inline policy allows everything).
pub const ADMIN_USER: &str = "deploy-admin";

// ------------------------------------------------------------------------------------------------
// Translation
// ------------------------------------------------------------------------------------------------

fn sam_python() -> PathBuf {
    let p = root().join(".work/sam-venv/bin/python");
    assert!(
        p.is_file(),
        "{} is missing: the deployment tests translate the SAM template with aws-sam-translator \
         from it. Run `scripts/setup.sh sam` (or scripts/test.sh).",
        p.display()
    );
    p
}

/// infra/template.yaml translated to CloudFormation by aws-sam-translator, offline (computed
/// once per test binary).
pub fn translated() -> Value {
    static TRANSLATED: OnceLock<Value> = OnceLock::new();
    TRANSLATED
        .get_or_init(|| {
            let script = root().join("scripts/sam_translate.py");
            assert!(script.is_file(), "{} is missing", script.display());
            let out = Command::new(sam_python())
                .arg(&script)
                .arg(root().join("infra/template.yaml"))
                .args(["--code-uri", CODE_URI, "--inline-definitions"])
                .args(["--region", REGION])
                .current_dir(root())
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env_remove("AWS_SESSION_TOKEN")
                .env("AWS_DEFAULT_REGION", REGION)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
            assert!(
                out.status.success(),
                "scripts/sam_translate.py failed with {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).expect("the translation is JSON")
        })
        .clone()
}

// ------------------------------------------------------------------------------------------------
// Adapting the translation to what moto can create
// ------------------------------------------------------------------------------------------------

/// What [`adapt_for_moto`] did.
#[derive(Debug, Default)]
pub struct Adaptation {
    /// (logical id, type) of every resource dropped.
    pub dropped: BTreeSet<(String, String)>,
    /// (logical id, from type, to type) of every resource rewritten.
    pub rewritten: BTreeSet<(String, String, String)>,
    /// (resource, dropped resource it no longer `DependsOn`).
    pub depends_on_removed: BTreeSet<(String, String)>,
}

/// The translated template with [`DROPPED`] left out and [`REWRITTEN`] applied. Panics when
/// anything but a `DependsOn` still refers to a dropped resource (that one would have to be
/// dropped and listed too).
pub fn adapt_for_moto(translated: &Value) -> (Value, Adaptation) {
    let mut t = translated.clone();
    let mut done = Adaptation::default();
    let resources = t["Resources"].as_object_mut().expect("Resources");
    for (id, kind, _) in DROPPED {
        if let Some(r) = resources.remove(id) {
            assert_eq!(r["Type"], kind, "{id} is no longer a {kind}");
            done.dropped.insert((id.to_owned(), kind.to_owned()));
        }
    }
    let dropped: BTreeSet<&str> = DROPPED.iter().map(|d| d.0).collect();
    for (id, r) in resources.iter_mut() {
        let kind = r["Type"].as_str().expect("Type").to_owned();
        for (from, to, _) in REWRITTEN {
            if kind == from {
                let props = r["Properties"].as_object_mut().expect("Properties");
                let role = props.remove("RoleName").expect("RoleName");
                props.insert("Roles".to_owned(), json!([role]));
                r["Type"] = json!(to);
                done.rewritten
                    .insert((id.clone(), from.to_owned(), to.to_owned()));
            }
        }
        if let Some(deps) = r.get_mut("DependsOn") {
            let list: Vec<String> = match deps {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                other => panic!("{id}: DependsOn {other}"),
            };
            let kept: Vec<&String> = list
                .iter()
                .filter(|d| !dropped.contains(d.as_str()))
                .collect();
            for d in list.iter().filter(|d| dropped.contains(d.as_str())) {
                done.depends_on_removed.insert((id.clone(), d.clone()));
            }
            *deps = json!(kept);
        }
    }
    let mut refs = Vec::new();
    collect_references(&t["Resources"], "Resources", &mut refs);
    collect_references(&t["Outputs"], "Outputs", &mut refs);
    let dangling: Vec<_> = refs
        .iter()
        .filter(|(_, target)| dropped.contains(target.as_str()))
        .collect();
    assert!(
        dangling.is_empty(),
        "these still refer to dropped resources (drop them too, and list them in DROPPED): \
         {dangling:?}"
    );
    (t, done)
}

/// (where, logical id) of every `Ref`, `Fn::GetAtt` and `Fn::Sub` `${Id}`/`${Id.Attr}` in `v`.
fn collect_references(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("Ref", Value::String(s)) => out.push((at.to_owned(), s.clone())),
                    ("Fn::GetAtt", Value::Array(a)) => {
                        if let Some(s) = a.first().and_then(Value::as_str) {
                            out.push((at.to_owned(), s.to_owned()));
                        }
                    }
                    ("Fn::Sub", sub) => {
                        let text = match sub {
                            Value::String(s) => s.as_str(),
                            Value::Array(a) => a.first().and_then(Value::as_str).unwrap_or(""),
                            _ => "",
                        };
                        for var in sub_variables(text) {
                            let id = var.split('.').next().unwrap_or_default().to_owned();
                            out.push((at.to_owned(), id));
                        }
                    }
                    _ => {}
                }
                collect_references(x, &format!("{at}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_references(x, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The `${...}` variables of an `Fn::Sub` text (not the `${!literal}` escapes).
pub fn sub_variables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let var = &after[..end];
        if !var.starts_with('!') {
            out.push(var.to_owned());
        }
        rest = &after[end + 1..];
    }
    out
}

/// `text` with every `${var}` replaced from `vars`; panics naming a variable it lacks.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    for var in sub_variables(text) {
        let value = vars
            .get(&var)
            .unwrap_or_else(|| panic!("no value for ${{{var}}}"));
        out = out.replace(&format!("${{{var}}}"), value);
    }
    out
}

/// `v` with its intrinsics resolved: `Ref` and `Fn::Sub` from `names` (parameters, pseudo
/// parameters, resources' `Ref` values and `Id.Attribute` values), `Fn::GetAtt` from
/// `names["Id.Attribute"]`, `Fn::If` by the template's conditions at the defaults, `Fn::Join`,
/// `Fn::Split`. `None` is `AWS::NoValue` (and removes itself from a list or an object).
pub fn resolve(t: &Value, v: &Value, names: &BTreeMap<String, String>) -> Option<Value> {
    let lookup = |name: &str| {
        names
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("cannot resolve {name}"))
    };
    match v {
        Value::Object(m)
            if m.len() == 1 && m.keys().all(|k| k == "Ref" || k.starts_with("Fn::")) =>
        {
            let (f, arg) = m.iter().next().expect("one key");
            match f.as_str() {
                "Ref" if arg == "AWS::NoValue" => None,
                "Ref" => Some(json!(lookup(arg.as_str().expect("Ref name")))),
                "Fn::GetAtt" => {
                    let parts: Vec<&str> = match arg {
                        Value::Array(a) => a.iter().map(|x| x.as_str().expect("name")).collect(),
                        Value::String(s) => s.splitn(2, '.').collect(),
                        other => panic!("Fn::GetAtt {other}"),
                    };
                    Some(json!(lookup(&parts.join("."))))
                }
                "Fn::Sub" => {
                    let text = arg.as_str().expect("Fn::Sub with a string");
                    let mut vars = BTreeMap::new();
                    for var in sub_variables(text) {
                        vars.insert(var.clone(), lookup(&var));
                    }
                    Some(json!(substitute(text, &vars)))
                }
                "Fn::If" => {
                    let a = arg.as_array().expect("Fn::If list");
                    let name = a[0].as_str().expect("condition name");
                    resolve(t, if condition(t, name) { &a[1] } else { &a[2] }, names)
                }
                "Fn::Join" => {
                    let a = arg.as_array().expect("Fn::Join list");
                    let parts = resolve(t, &a[1], names).expect("Fn::Join values");
                    let texts: Vec<String> = parts
                        .as_array()
                        .expect("a list")
                        .iter()
                        .map(|p| text(p).expect("text"))
                        .collect();
                    Some(json!(texts.join(a[0].as_str().expect("delimiter"))))
                }
                "Fn::Split" => {
                    let a = arg.as_array().expect("Fn::Split list");
                    let whole = resolve(t, &a[1], names).expect("Fn::Split value");
                    let whole = whole.as_str().expect("text");
                    Some(json!(
                        whole
                            .split(a[0].as_str().expect("delimiter"))
                            .collect::<Vec<_>>()
                    ))
                }
                other => panic!("unsupported intrinsic {other}"),
            }
        }
        Value::Object(m) => Some(Value::Object(
            m.iter()
                .filter_map(|(k, x)| resolve(t, x, names).map(|r| (k.clone(), r)))
                .collect(),
        )),
        Value::Array(a) => Some(Value::Array(
            a.iter().filter_map(|x| resolve(t, x, names)).collect(),
        )),
        other => Some(other.clone()),
    }
}

// ------------------------------------------------------------------------------------------------
// Parameters and conditions
// ------------------------------------------------------------------------------------------------

/// Every parameter's default, as text (CloudFormation's view of a parameter value).
pub fn parameter_defaults(t: &Value) -> BTreeMap<String, String> {
    t["Parameters"]
        .as_object()
        .expect("Parameters")
        .iter()
        .map(|(k, p)| (k.clone(), text(&p["Default"]).unwrap_or_default()))
        .collect()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `AWS::AccountId`, `AWS::Region`, `AWS::Partition`, `AWS::URLSuffix`, `AWS::StackName` as
/// moto answers them, and every parameter's default.
pub fn variables(t: &Value) -> BTreeMap<String, String> {
    let mut vars = parameter_defaults(t);
    for (k, v) in [
        ("AWS::AccountId", ACCOUNT),
        ("AWS::Region", REGION),
        ("AWS::Partition", "aws"),
        ("AWS::URLSuffix", "amazonaws.com"),
        ("AWS::StackName", STACK),
    ] {
        vars.insert(k.to_owned(), v.to_owned());
    }
    vars
}

/// Whether the template's condition `name` holds with every parameter at its default.
pub fn condition(t: &Value, name: &str) -> bool {
    let c = &t["Conditions"][name];
    assert!(!c.is_null(), "no condition {name}");
    evaluate(t, c)
}

fn evaluate(t: &Value, c: &Value) -> bool {
    let m = c
        .as_object()
        .filter(|m| m.len() == 1)
        .unwrap_or_else(|| panic!("not a condition: {c}"));
    let (f, args) = m.iter().next().expect("one key");
    let args: Vec<Value> = match args {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    match f.as_str() {
        "Fn::Equals" => {
            let vars = variables(t);
            let value = |v: &Value| match v.get("Ref").and_then(Value::as_str) {
                Some(name) => vars
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| panic!("unknown {name}")),
                None => text(v).unwrap_or_else(|| panic!("cannot compare {v}")),
            };
            value(&args[0]) == value(&args[1])
        }
        "Fn::Not" => !evaluate(t, &args[0]),
        "Fn::And" => args.iter().all(|a| evaluate(t, a)),
        "Fn::Or" => args.iter().any(|a| evaluate(t, a)),
        "Condition" => condition(t, args[0].as_str().expect("a condition name")),
        other => panic!("unsupported condition function {other}"),
    }
}

/// logical id → type of every resource of `t` whose `Condition` holds at the defaults.
pub fn resources_at_defaults(t: &Value) -> BTreeMap<String, String> {
    t["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Condition"].as_str().is_none_or(|c| condition(t, c)))
        .map(|(id, r)| (id.clone(), r["Type"].as_str().expect("Type").to_owned()))
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Signed AWS calls
// ------------------------------------------------------------------------------------------------

/// Credentials to sign with: an IAM user's access key, or what sts:AssumeRole returned.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// `AccessKeyId`.
    pub access_key_id: String,
    /// `SecretAccessKey`.
    pub secret_access_key: String,
    /// `SessionToken` (assumed roles only).
    pub session_token: Option<String>,
}

impl Credentials {
    /// Credentials moto does not know: only good for the unauthenticated first requests.
    pub fn anonymous() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".to_owned(),
            secret_access_key: "anonymous".to_owned(),
            session_token: None,
        }
    }

    /// From an STS `Credentials` or IAM `AccessKey` object.
    pub fn from_json(v: &Value) -> Credentials {
        Credentials {
            access_key_id: v["AccessKeyId"].as_str().expect("AccessKeyId").to_owned(),
            secret_access_key: v["SecretAccessKey"]
                .as_str()
                .expect("SecretAccessKey")
                .to_owned(),
            session_token: v["SessionToken"].as_str().map(str::to_owned),
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("AccessKeyId".into(), json!(self.access_key_id));
        m.insert("SecretAccessKey".into(), json!(self.secret_access_key));
        if let Some(t) = &self.session_token {
            m.insert("SessionToken".into(), json!(t));
        }
        Value::Object(m)
    }
}

/// One API call: boto3 service name, operation (`PutImage`), parameters as boto3 takes them
/// (bytes as `{"$base64": ...}`, see [`bytes_param`]).
#[derive(Clone, Debug)]
pub struct Call {
    /// Whose credentials sign it.
    pub credentials: Credentials,
    /// boto3's service name (`ecr`, `kms`, `inspector2`, ...).
    pub service: String,
    /// The API operation (`BatchGetImage`).
    pub operation: String,
    /// Its parameters.
    pub params: Value,
}

impl Call {
    /// A call signed with `credentials`.
    pub fn new(credentials: &Credentials, service: &str, operation: &str, params: Value) -> Call {
        Call {
            credentials: credentials.clone(),
            service: service.to_owned(),
            operation: operation.to_owned(),
            params,
        }
    }
}

/// A parameter value holding `bytes`.
pub fn bytes_param(bytes: &[u8]) -> Value {
    json!({"$base64": base64::engine::general_purpose::STANDARD.encode(bytes)})
}

/// What a call answered.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// 2xx: the response (without ResponseMetadata).
    Ok(Value),
    /// An error answer.
    Err {
        /// The error code (`AccessDenied`, `RepositoryNotFoundException`, ...).
        code: String,
        /// Its message.
        message: String,
        /// The HTTP status.
        status: u16,
    },
}

impl Outcome {
    /// Whether IAM refused the call: moto answers AccessDenied (HTTP 403) naming the caller and
    /// the action.
    pub fn is_access_denied(&self) -> bool {
        matches!(self, Outcome::Err { code, status: 403, .. } if code == "AccessDenied")
    }

    /// The response; panics with the error otherwise.
    pub fn ok(&self, what: &str) -> &Value {
        match self {
            Outcome::Ok(v) => v,
            Outcome::Err {
                code,
                message,
                status,
            } => panic!("{what}: {status} {code}: {message}"),
        }
    }
}

fn aws_calls_script() -> PathBuf {
    let p = root().join("tests/it/support/aws_calls.py");
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// Makes every call in order against `moto` (one Python process for the batch) and returns
/// their outcomes. moto's XML error bodies (its IAM denials for JSON-protocol services) are
/// read for their code and message.
pub fn run_calls(moto: &Moto, calls: &[Call]) -> Vec<Outcome> {
    if calls.is_empty() {
        return Vec::new();
    }
    let (python, _) = super::moto::moto_program();
    let request = json!({
        "endpoint": moto.url(),
        "region": REGION,
        "calls": calls.iter().map(|c| json!({
            "credentials": c.credentials.to_json(),
            "service": c.service,
            "operation": c.operation,
            "params": c.params,
        })).collect::<Vec<_>>(),
    });
    let mut child = Command::new(&python)
        .arg(aws_calls_script())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("NO_PROXY", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write the calls");
    let out = child.wait_with_output().expect("aws_calls.py");
    assert!(
        out.status.success(),
        "aws_calls.py failed with {}\n{}\n--- moto log (tail) ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        tail(&moto.log(), 4000)
    );
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).expect("aws_calls.py output");
    assert_eq!(answers.len(), calls.len(), "one answer per call");
    answers
        .into_iter()
        .map(|a| {
            if a["ok"] == true {
                return Outcome::Ok(a["result"].clone());
            }
            let (mut code, mut message) = (
                a["code"].as_str().unwrap_or_default().to_owned(),
                a["message"].as_str().unwrap_or_default().to_owned(),
            );
            if let (Some(c), Some(m)) = (xml_tag(&message, "Code"), xml_tag(&message, "Message")) {
                (code, message) = (c, m);
            }
            Outcome::Err {
                code,
                message,
                status: u16::try_from(a["status"].as_u64().unwrap_or(0)).unwrap_or(0),
            }
        })
        .collect()
}

fn xml_tag(text: &str, tag: &str) -> Option<String> {
    let start = text.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + text[start..].find(&format!("</{tag}>"))?;
    Some(text[start..end].to_owned())
}

fn tail(text: &str, n: usize) -> &str {
    let start = text.len().saturating_sub(n);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    &text[start..]
}

/// One call that must succeed; its response.
pub fn call(
    moto: &Moto,
    credentials: &Credentials,
    service: &str,
    op: &str,
    params: Value,
) -> Value {
    run_calls(moto, &[Call::new(credentials, service, op, params)])
        .remove(0)
        .ok(&format!("{service}:{op}"))
        .clone()
}

// ------------------------------------------------------------------------------------------------
// moto enforcing IAM, and its administrator
// ------------------------------------------------------------------------------------------------

/// moto through `tests/it/support/moto_deploy_server.py`, authenticating and authorizing every
/// request after the first [`BOOTSTRAP_CALLS`] ([`bootstrap_admin`]'s).
pub fn start_enforcing_moto() -> Moto {
    let launcher = root().join("tests/it/support/moto_deploy_server.py");
    Moto::start_launcher_with_env(
        &launcher,
        &[("INITIAL_NO_AUTH_ACTION_COUNT", &BOOTSTRAP_CALLS.to_string())],
    )
}

/// Spends moto's unauthenticated requests on creating [`ADMIN_USER`] (inline policy: every action
/// on every resource) and its access key; everything else is signed with that key. Panics when a
/// request beyond the first [`BOOTSTRAP_CALLS`] was needed (moto would refuse it).
pub fn bootstrap_admin(moto: &Moto) -> Credentials {
    let anonymous = Credentials::anonymous();
    let calls = [
        Call::new(
            &anonymous,
            "iam",
            "CreateUser",
            json!({"UserName": ADMIN_USER}),
        ),
        Call::new(
            &anonymous,
            "iam",
            "PutUserPolicy",
            json!({
                "UserName": ADMIN_USER,
                "PolicyName": "administrator",
                "PolicyDocument": json!({
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }).to_string(),
            }),
        ),
        Call::new(
            &anonymous,
            "iam",
            "CreateAccessKey",
            json!({"UserName": ADMIN_USER}),
        ),
    ];
    assert_eq!(calls.len(), BOOTSTRAP_CALLS);
    let answers = run_calls(moto, &calls);
    let key = answers[2].ok("iam:CreateAccessKey")["AccessKey"].clone();
    let admin = Credentials::from_json(&key);
    // From now on moto checks: an unknown key is refused, the administrator is not.
    let probe = run_calls(
        moto,
        &[
            Call::new(&anonymous, "sts", "GetCallerIdentity", json!({})),
            Call::new(&admin, "sts", "GetCallerIdentity", json!({})),
        ],
    );
    assert!(
        matches!(&probe[0], Outcome::Err { code, .. } if code == "InvalidClientTokenId"),
        "moto does not authenticate after the bootstrap requests: {:?}",
        probe[0]
    );
    assert_eq!(
        probe[1].ok("sts:GetCallerIdentity")["Arn"],
        admin_arn(),
        "the administrator"
    );
    admin
}

/// [`ADMIN_USER`]'s ARN.
pub fn admin_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{ADMIN_USER}")
}

// ------------------------------------------------------------------------------------------------
// The stack
// ------------------------------------------------------------------------------------------------

/// A stack moto created.
#[derive(Debug)]
pub struct Deployed {
    /// Its StackId.
    pub stack_id: String,
    /// logical id → (type, physical id) of every resource ListStackResources names.
    pub resources: BTreeMap<String, (String, String)>,
    /// Output key → value.
    pub outputs: BTreeMap<String, String>,
}

impl Deployed {
    /// The physical id of `logical`; panics when the stack has no such resource.
    pub fn physical(&self, logical: &str) -> &str {
        &self
            .resources
            .get(logical)
            .unwrap_or_else(|| panic!("the stack has no {logical}"))
            .1
    }
}

/// Uploads the placeholder code package and creates the stack from `template` as `admin`; waits
/// for CREATE_COMPLETE (moto creates synchronously; a minute at most).
pub fn deploy(moto: &Moto, admin: &Credentials, template: &Value) -> Deployed {
    let zip = stored_zip(
        "bootstrap",
        b"#!/bin/sh\n# placeholder: moto never runs it\nexit 1\n",
    );
    let answers = run_calls(
        moto,
        &[
            Call::new(admin, "s3", "CreateBucket", json!({"Bucket": CODE_BUCKET})),
            Call::new(
                admin,
                "s3",
                "PutObject",
                json!({"Bucket": CODE_BUCKET, "Key": CODE_KEY, "Body": bytes_param(&zip)}),
            ),
            Call::new(
                admin,
                "cloudformation",
                "CreateStack",
                json!({
                    "StackName": STACK,
                    "TemplateBody": template.to_string(),
                    "Capabilities": [
                        "CAPABILITY_IAM",
                        "CAPABILITY_NAMED_IAM",
                        "CAPABILITY_AUTO_EXPAND",
                    ],
                }),
            ),
        ],
    );
    for (a, what) in answers
        .iter()
        .zip(["s3:CreateBucket", "s3:PutObject", "CreateStack"])
    {
        a.ok(what);
    }
    let stack_id = answers[2].ok("CreateStack")["StackId"]
        .as_str()
        .expect("StackId")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let stack = loop {
        let v = call(
            moto,
            admin,
            "cloudformation",
            "DescribeStacks",
            json!({"StackName": STACK}),
        );
        let stack = v["Stacks"][0].clone();
        let status = stack["StackStatus"].as_str().unwrap_or_default().to_owned();
        if status == "CREATE_COMPLETE" {
            break stack;
        }
        assert!(
            status.ends_with("_IN_PROGRESS") && Instant::now() < deadline,
            "stack {STACK}: {status} ({})\n--- moto log (tail) ---\n{}",
            stack["StackStatusReason"],
            tail(&moto.log(), 4000)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let listed = call(
        moto,
        admin,
        "cloudformation",
        "ListStackResources",
        json!({"StackName": STACK}),
    );
    assert!(
        listed["NextToken"].is_null(),
        "ListStackResources paginated: {listed}"
    );
    let resources = listed["StackResourceSummaries"]
        .as_array()
        .expect("StackResourceSummaries")
        .iter()
        // moto lists the resources it did not create (a false Condition, an unknown type) as
        // entries without a logical id.
        .filter(|r| {
            r["LogicalResourceId"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .map(|r| {
            assert_eq!(r["ResourceStatus"], "CREATE_COMPLETE", "{r}");
            (
                r["LogicalResourceId"].as_str().expect("id").to_owned(),
                (
                    r["ResourceType"].as_str().expect("type").to_owned(),
                    r["PhysicalResourceId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                ),
            )
        })
        .collect();
    let outputs = stack["Outputs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    (
                        o["OutputKey"].as_str().expect("OutputKey").to_owned(),
                        o["OutputValue"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Deployed {
        stack_id,
        resources,
        outputs,
    }
}

/// A zip archive with one file, executable (the `bootstrap` of a `provided.al2023` function),
/// made by Python's `zipfile` with the interpreter that runs the AWS calls.
pub fn stored_zip(name: &str, content: &[u8]) -> Vec<u8> {
    const SCRIPT: &str = "import io, sys, zipfile\n\
        buf = io.BytesIO()\n\
        with zipfile.ZipFile(buf, 'w', zipfile.ZIP_STORED) as z:\n\
        \x20   info = zipfile.ZipInfo(sys.argv[1], date_time=(1980, 1, 1, 0, 0, 0))\n\
        \x20   info.create_system = 3\n\
        \x20   info.external_attr = 0o100755 << 16\n\
        \x20   z.writestr(info, sys.stdin.buffer.read())\n\
        sys.stdout.buffer.write(buf.getvalue())\n";
    let (python, _) = super::moto::moto_program();
    let mut child = Command::new(&python)
        .args(["-c", SCRIPT, name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(content)
        .expect("write the file to zip");
    let out = child.wait_with_output().expect("zipfile");
    assert!(out.status.success(), "zipfile failed: {}", out.status);
    out.stdout
}
