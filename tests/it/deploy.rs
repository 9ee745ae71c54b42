//! infra/template.yaml deployed into a stand-in: translated offline by aws-sam-translator
//! (`scripts/sam_translate.py`), created with CreateStack in moto's CloudFormation, read back
//! through moto's APIs, and each function role exercised with moto's IAM enforcement on
//! (`INITIAL_NO_AUTH_ACTION_COUNT`, calls signed with the role's own assumed credentials).
//!
//! moto is started through `tests/it/support/moto_deploy_server.py`: `scripts/moto_server.py`
//! with eight corrections, each what AWS documents (its doc lists them): IAM evaluated against the
//! repository, key or secret for ECR, KMS and Secrets Manager (moto evaluates every ECR, KMS and
//! Secrets Manager call against `*`, so no resource-scoped Allow or Deny of the template would
//! mean anything); SigV4 of body-less GETs; `Ref` of an event bus; roles' inline policies and key
//! policies kept as JSON; the key's `KeySpec`/`KeyUsage`; a state machine's
//! `DefinitionSubstitutions`, logging and tracing; a function's architecture and tracing; a log
//! group's `Arn`.
//!
//! What the tests prove:
//!
//! - [`the_sam_template_translates_offline`]: the transform needs no AWS call, adds no resource
//!   of its own (no implicit role or policy: every function and state machine names its role),
//!   and leaves every function's code in the code bucket and every definition inline.
//! - [`moto_skips_exactly_what_the_harness_adapts`]: given the translation as it is, moto's
//!   CloudFormation silently skips exactly [`cfn::DROPPED`] and the `AWS::IAM::RolePolicy`
//!   resources ([`cfn::REWRITTEN`]); the harness drops or rewrites nothing else.
//! - [`the_deployed_stack_is_the_template`]: every other resource whose condition holds at the
//!   defaults is created, with the template's properties as moto reads them back: the six
//!   functions (role, runtime, arm64, handler, memory, timeout, tracing, every environment
//!   variable, the repository prefixes and the KMS key ARN among them), the nine roles (trust and
//!   every inline policy document, the rewritten ones included), both state machines (the
//!   substituted definitions: the Task resources are the functions' ARNs; role, logging, tracing),
//!   the three rules (patterns, the state machine as the only target, role, retries, dead-letter
//!   queue), the bus, the signing key (ECC_NIST_P256, SIGN_VERIFY, its policy, its alias), the
//!   dead-letter queue (retention, SSE), the log groups and the outputs.
//! - [`each_function_role_may_do_exactly_what_the_template_grants`]: for each of the six function
//!   roles and every probe (pull, push and CreateRepository on an ingress, a quarantine, a
//!   trusted and an approvals repository; GetAuthorizationToken; kms:Sign, GetPublicKey and
//!   DescribeKey on the signing key; inspector2:ListFindings; the source-credential secret and
//!   another), moto allows exactly what infra/README.md's "Least privilege" says and denies the
//!   rest: copy pulls ingress and pulls, pushes and creates quarantine; gate reads manifests in
//!   quarantine and trusted and approvals; promote pulls quarantine and pulls, pushes and creates
//!   trusted; sign and retag pull and push trusted (retag also reads approvals); sync-plan reads
//!   manifests in ingress and trusted and pushes nothing; only gate, promote and retag read
//!   Inspector; only copy and sync-plan read the source-credential secret; sign and retag read the
//!   public key. kms:Sign is denied to every role, the sign role included, as AWS denies it to the
//!   sign role's credentials outside the sign function (`SignFunctionSourceGuard`); with that
//!   guard deleted, the sign role alone may sign.
//! - [`moto_leaves_unenforced_what_the_static_checks_cover`]: the limits below, each shown by a
//!   probe, so this list fails when moto changes; and
//!   [`plain_moto_evaluates_ecr_permissions_against_no_repository`]: why the first correction is
//!   needed (moto as `scripts/moto_server.py` starts it ignores a repository-scoped Allow and
//!   Deny).
//!
//! What moto cannot enforce (so tests/it/infra.rs keeps checking it statically):
//!
//! - Resource-based policies. moto evaluates identity policies only
//!   (`moto/iam/access_control.py`: "TODO add support for resource-based policies"): an ECR
//!   repository policy is stored and never consulted (probe: the administrator pushes to a
//!   repository carrying `TrustedRepositoryTemplate`'s policy, which denies it); a KMS key policy
//!   is consulted by DescribeKey alone, and only for a Deny statement with `Resource: "*"`
//!   (`moto/kms/responses.py`, `moto/kms/policy_validator.py`), never for its Allow statements
//!   (probe: the administrator, whom the key policy grants no kms:Sign, signs). infra.rs:
//!   `iam_only_the_sign_role_can_sign`,
//!   `iam_repository_access_is_limited_to_the_pipeline_roles`,
//!   `requests_and_outcomes_use_the_pipelines_own_bus_and_only_named_principals_put_events`.
//! - Conditions. moto's evaluator knows `StringEquals` only and takes every other condition as
//!   met (`moto/iam/policy_conditions.py`: "If the evaluation operation is not supported, ignore
//!   condition evaluation"; probe: a Deny whose `ArnLike` condition cannot hold still denies). So
//!   `SignFunctionSourceGuard`'s Deny applies to the sign role always: that matches AWS for
//!   credentials used outside the sign function (the `lambda:SourceFunctionArn` key is absent,
//!   `ArnNotLike` holds), but nothing here can show that the sign function itself may sign.
//!   infra.rs: `iam_the_sign_role_signs_only_from_the_sign_function`.
//! - Resources of other services. moto evaluates only SQS, IAM, STS and S3 (and, corrected, ECR,
//!   KMS and Secrets Manager) against the request's resource, every other service against `*`,
//!   where a resource-scoped Allow never matches (probe: `EventsStartExecutionRole` is denied the
//!   states:StartExecution its policy allows on the promotion state machine). So the roles of the
//!   state machines and rules (lambda:InvokeFunction, states:StartExecution, events:PutEvents)
//!   and the functions' CloudWatch Logs and X-Ray statements are read back, not exercised.
//!   infra.rs: `iam_state_machine_role_invokes_only_the_five_functions`,
//!   `iam_the_sync_state_machine_invokes_only_sync_plan_and_starts_only_promotions`,
//!   `every_rule_targets_the_state_machine_with_a_role_retries_and_a_dead_letter_queue`,
//!   `iam_no_wildcard_actions_and_star_resources_only_where_no_scope_exists`.
//! - Operations moto lacks: inspector2:ListCoverage is not routed at all (404 before any
//!   authorization; probe), so only ListFindings is exercised; ecr:GetDownloadUrlForLayer is
//!   authorized and then fails as not implemented (a 500), which the probes count as allowed
//!   and an AccessDenied as denied. infra.rs:
//!   `iam_no_wildcard_actions_and_star_resources_only_where_no_scope_exists`.
//! - Resource types moto's CloudFormation lacks ([`cfn::DROPPED`]): the three repository creation
//!   templates (create on push, their repository policies and lifecycles), the event bus policy,
//!   the dead-letter queue policy and the dead-letter alarm. infra.rs:
//!   `repositories_are_created_on_push_from_the_two_creation_templates`,
//!   `iam_only_copy_creates_quarantine_and_only_promote_creates_trusted_repositories`,
//!   `iam_repository_access_is_limited_to_the_pipeline_roles`,
//!   `requests_and_outcomes_use_the_pipelines_own_bus_and_only_named_principals_put_events`,
//!   `every_rule_targets_the_state_machine_with_a_role_retries_and_a_dead_letter_queue`,
//!   `functions_reserve_concurrency_by_parameter_and_dead_letters_raise_an_alarm`.
//! - A function's `LoggingConfig` (moto's Lambda has none) and `ReservedConcurrentExecutions`
//!   (unset at the defaults), and the `DependsOn` of `PromotionStateMachine` on the creation
//!   templates (dropped with them). infra.rs: `functions_follow_the_functions_readme_contract`,
//!   `functions_reserve_concurrency_by_parameter_and_dead_letters_raise_an_alarm`.
//!
//! moto also keeps a `Number` parameter's value as a number (a function's `SCAN_POLL_SECONDS`
//! reads back as 30, not "30"); the environment is compared as text, as CloudFormation passes it.
//!
//! The stand-in's only other liberty: only Lambda may assume the function roles, so the tests
//! replace each role's trust policy (after checking it names lambda.amazonaws.com alone) by one
//! trusting the test's administrator; the permission policies are untouched. Parameters stay at
//! their defaults, so the webhook, the sync schedule, the source ECR roles and the approver keys
//! (all off by default) are not deployed.

use crate::support::cfn::{
    self, Call, Credentials, Deployed, Outcome, admin_arn, bootstrap_admin, bytes_param, deploy,
    run_calls, start_enforcing_moto,
};
use crate::support::moto::{ACCOUNT, Moto, REGION};
use crate::support::pipeline::root;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

// ------------------------------------------------------------------------------------------------
// What the template intends (infra/README.md), independent of the template itself
// ------------------------------------------------------------------------------------------------

/// The pipeline's registry in moto's account and region.
const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
/// The repository prefixes' defaults.
const INGRESS: &str = "incoming/";
const QUARANTINE: &str = "quarantine/";
const TRUSTED: &str = "trusted/";
const APPROVALS: &str = "approvals/";
/// The approval artifact type's default.
const APPROVAL_TYPE: &str = "application/vnd.ecr-promotion.approval.v1+json";
/// The source-credential secret prefix's default.
const SECRET_PREFIX: &str = "ecr-pullthroughcache/ecr-promotion/";

/// The six functions: logical id, its role's logical id, short name, timeout (s), and the
/// variables beside the four every function has (PIPELINE_REGISTRY and the three prefixes) that
/// must have these values (`None`: the key ARN of the signing key).
struct Function {
    id: &'static str,
    role: &'static str,
    short: &'static str,
    timeout: u64,
    fixed: &'static [(&'static str, Option<&'static str>)],
}

const FUNCTIONS: [Function; 6] = [
    Function {
        id: "CopyToQuarantineFunction",
        role: "CopyToQuarantineFunctionRole",
        short: "copy",
        timeout: 900,
        fixed: &[
            ("INGRESS_REGISTRY", Some(REGISTRY)),
            ("SOURCE_CREDENTIALS_SECRET_PREFIX", Some(SECRET_PREFIX)),
        ],
    },
    Function {
        id: "ScanGateFunction",
        role: "ScanGateFunctionRole",
        short: "gate",
        timeout: 120,
        fixed: &[("APPROVALS_PREFIX", Some(APPROVALS))],
    },
    Function {
        id: "PromoteAndAnnotateFunction",
        role: "PromoteAndAnnotateFunctionRole",
        short: "promote",
        timeout: 900,
        fixed: &[],
    },
    Function {
        id: "SignFunction",
        role: "SignFunctionRole",
        short: "sign",
        timeout: 120,
        fixed: &[("KMS_KEY_ID", None), ("KMS_MESSAGE_MODE", Some("digest"))],
    },
    Function {
        id: "RetagForEnvironmentFunction",
        role: "RetagForEnvironmentFunctionRole",
        short: "retag",
        timeout: 120,
        fixed: &[("KMS_KEY_ID", None), ("APPROVALS_PREFIX", Some(APPROVALS))],
    },
    Function {
        id: "SyncPlanFunction",
        role: "SyncPlanFunctionRole",
        short: "sync-plan",
        timeout: 300,
        fixed: &[
            ("INGRESS_REGISTRY", Some(REGISTRY)),
            ("SOURCE_CREDENTIALS_SECRET_PREFIX", Some(SECRET_PREFIX)),
            ("SYNC_MAX_CONCURRENCY", Some("3")),
            ("SYNC_TOLERATED_FAILURE_PERCENTAGE", Some("20")),
            ("SYNC_MAX_PROMOTIONS", Some("200")),
        ],
    },
];

/// Variables only some functions may have: a function not listing one in `fixed` must not.
const RESTRICTED_VARIABLES: [&str; 3] = [
    "KMS_KEY_ID",
    "SOURCE_CREDENTIALS_SECRET_PREFIX",
    "INGRESS_REGISTRY",
];

/// Every role of the stack at the defaults: logical id, the service trusted to assume it, and
/// the names of its inline policies (its own and the `AWS::IAM::RolePolicy` ones).
const ROLES: [(&str, &str, &[&str]); 9] = [
    (
        "CopyToQuarantineFunctionRole",
        "lambda.amazonaws.com",
        &["copy-to-quarantine", "source-credentials"],
    ),
    (
        "ScanGateFunctionRole",
        "lambda.amazonaws.com",
        &["scan-gate"],
    ),
    (
        "PromoteAndAnnotateFunctionRole",
        "lambda.amazonaws.com",
        &["promote-and-annotate"],
    ),
    (
        "SignFunctionRole",
        "lambda.amazonaws.com",
        &["sign", "sign-with-key", "sign-only-from-the-sign-function"],
    ),
    (
        "RetagForEnvironmentFunctionRole",
        "lambda.amazonaws.com",
        &["retag-for-environment", "read-public-key"],
    ),
    (
        "SyncPlanFunctionRole",
        "lambda.amazonaws.com",
        &["sync-plan", "source-credentials"],
    ),
    (
        "StateMachineRole",
        "states.amazonaws.com",
        &["promotion-state-machine"],
    ),
    (
        "SyncStateMachineRole",
        "states.amazonaws.com",
        &["sync-state-machine"],
    ),
    (
        "EventsStartExecutionRole",
        "events.amazonaws.com",
        &["start-promotion"],
    ),
];

/// The name of the sign role's guard policy (`SignFunctionSourceGuard`).
const SIGN_GUARD: &str = "sign-only-from-the-sign-function";

// ECR actions by what they do (the template's comment above the function roles).
const PULL: &[&str] = &[
    "BatchGetImage",
    "GetDownloadUrlForLayer",
    "BatchCheckLayerAvailability",
    "ListImages",
    "DescribeImages",
];
const PUSH: &[&str] = &[
    "InitiateLayerUpload",
    "UploadLayerPart",
    "CompleteLayerUpload",
    "PutImage",
];
const READ_MANIFESTS: &[&str] = &["BatchGetImage", "ListImages", "DescribeImages"];
const READ_APPROVALS: &[&str] = &[
    "BatchGetImage",
    "GetDownloadUrlForLayer",
    "BatchCheckLayerAvailability",
    "ListImages",
];
const CREATE: &[&str] = &["CreateRepository"];

/// The repository-scoped ECR actions probed, on one repository under each prefix.
const ECR_PROBES: [&str; 10] = [
    "BatchGetImage",
    "GetDownloadUrlForLayer",
    "BatchCheckLayerAvailability",
    "ListImages",
    "DescribeImages",
    "InitiateLayerUpload",
    "UploadLayerPart",
    "CompleteLayerUpload",
    "PutImage",
    "CreateRepository",
];
const PREFIXES: [&str; 4] = [INGRESS, QUARANTINE, TRUSTED, APPROVALS];

/// What each function role may do on the repositories under each prefix (infra/README.md,
/// "Least privilege"); everything not listed is denied.
const ECR_GRANTS: [(&str, &str, &[&[&str]]); 12] = [
    ("copy", INGRESS, &[PULL]),
    ("copy", QUARANTINE, &[PULL, PUSH, CREATE]),
    ("gate", QUARANTINE, &[READ_MANIFESTS]),
    ("gate", TRUSTED, &[READ_MANIFESTS]),
    ("gate", APPROVALS, &[READ_APPROVALS]),
    ("promote", QUARANTINE, &[PULL]),
    ("promote", TRUSTED, &[PULL, PUSH, CREATE]),
    ("sign", TRUSTED, &[PULL, PUSH]),
    ("retag", TRUSTED, &[PULL, PUSH]),
    ("retag", APPROVALS, &[READ_APPROVALS]),
    ("sync-plan", INGRESS, &[READ_MANIFESTS]),
    ("sync-plan", TRUSTED, &[READ_MANIFESTS]),
];

/// The probes without a repository.
const OTHER_PROBES: [&str; 7] = [
    "ecr:GetAuthorizationToken",
    "kms:Sign",
    "kms:GetPublicKey",
    "kms:DescribeKey",
    "inspector2:ListFindings",
    "secretsmanager:GetSecretValue source",
    "secretsmanager:GetSecretValue elsewhere",
];

/// Which of [`OTHER_PROBES`] each role may make (kms:Sign: nobody while the sign role's guard is
/// in place; the sign role once it is deleted).
const OTHER_GRANTS: [(&str, &[&str]); 6] = [
    (
        "copy",
        &[
            "ecr:GetAuthorizationToken",
            "secretsmanager:GetSecretValue source",
        ],
    ),
    (
        "gate",
        &["ecr:GetAuthorizationToken", "inspector2:ListFindings"],
    ),
    (
        "promote",
        &["ecr:GetAuthorizationToken", "inspector2:ListFindings"],
    ),
    (
        "sign",
        &[
            "ecr:GetAuthorizationToken",
            "kms:GetPublicKey",
            "kms:DescribeKey",
        ],
    ),
    (
        "retag",
        &[
            "ecr:GetAuthorizationToken",
            "inspector2:ListFindings",
            "kms:GetPublicKey",
            "kms:DescribeKey",
        ],
    ),
    (
        "sync-plan",
        &[
            "ecr:GetAuthorizationToken",
            "secretsmanager:GetSecretValue source",
        ],
    ),
];

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

#[test]
fn the_sam_template_translates_offline() {
    let started = Instant::now();
    let t = cfn::translated();
    let sam = sam_template();
    assert!(t.get("Transform").is_none(), "the transform is applied");
    let translated: BTreeMap<&str, &str> = t["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .map(|(id, r)| (id.as_str(), r["Type"].as_str().expect("Type")))
        .collect();
    assert!(
        translated
            .values()
            .all(|k| !k.starts_with("AWS::Serverless::")),
        "{translated:?}"
    );
    // Every resource of the SAM template keeps its logical id, a serverless one becoming its
    // CloudFormation type; SAM adds only the webhook's function URL and its two permissions.
    let mut expected = BTreeMap::new();
    for (id, r) in sam["Resources"].as_object().expect("Resources") {
        let kind = match r["Type"].as_str().expect("Type") {
            "AWS::Serverless::Function" => "AWS::Lambda::Function",
            "AWS::Serverless::StateMachine" => "AWS::StepFunctions::StateMachine",
            other => other,
        };
        expected.insert(id.as_str(), kind);
    }
    let added: BTreeMap<&str, &str> = translated
        .iter()
        .filter(|(id, _)| !expected.contains_key(*id))
        .map(|(id, k)| (*id, *k))
        .collect();
    assert_eq!(
        added,
        BTreeMap::from([
            (
                "GitHubWebhookFunctionURLInvokeAllowPublicAccess",
                "AWS::Lambda::Permission"
            ),
            ("GitHubWebhookFunctionUrl", "AWS::Lambda::Url"),
            (
                "GitHubWebhookFunctionUrlPublicPermissions",
                "AWS::Lambda::Permission"
            ),
        ]),
        "SAM added resources (an implicit role means a function lost its Role)"
    );
    for id in added.keys() {
        assert_eq!(
            t["Resources"][id]["Condition"], "HasGitHubWebhook",
            "{id} exists only with the webhook"
        );
    }
    for (id, kind) in &expected {
        assert_eq!(translated.get(id), Some(kind), "{id}");
    }
    for (id, r) in t["Resources"].as_object().expect("Resources") {
        match r["Type"].as_str().expect("Type") {
            "AWS::Lambda::Function" => assert_eq!(
                r["Properties"]["Code"],
                json!({"S3Bucket": cfn::CODE_BUCKET, "S3Key": cfn::CODE_KEY}),
                "{id}"
            ),
            "AWS::StepFunctions::StateMachine" => {
                let p = &r["Properties"];
                assert!(
                    p["DefinitionS3Location"].is_null(),
                    "{id}: inline definition"
                );
                assert!(
                    p["DefinitionString"].is_object(),
                    "{id}: {}",
                    p["DefinitionString"]
                );
                assert!(p["DefinitionSubstitutions"].is_object(), "{id}");
            }
            "AWS::IAM::Role" => assert!(
                r["Properties"]["ManagedPolicyArns"].is_null(),
                "{id}: the template attaches no managed policy"
            ),
            _ => {}
        }
    }
    eprintln!("translation: ok in {:.1?}", started.elapsed());
}

#[test]
fn moto_skips_exactly_what_the_harness_adapts() {
    let started = Instant::now();
    let translated = cfn::translated();
    let (_, adaptation) = cfn::adapt_for_moto(&translated);
    let dropped: BTreeSet<(String, String)> = cfn::DROPPED
        .iter()
        .map(|(id, kind, _)| ((*id).to_owned(), (*kind).to_owned()))
        .collect();
    assert_eq!(
        adaptation.dropped, dropped,
        "the harness drops exactly DROPPED"
    );
    let role_policies: BTreeSet<(String, String, String)> = translated["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::IAM::RolePolicy")
        .map(|(id, _)| {
            (
                id.clone(),
                "AWS::IAM::RolePolicy".to_owned(),
                "AWS::IAM::Policy".to_owned(),
            )
        })
        .collect();
    assert_eq!(
        adaptation.rewritten, role_policies,
        "the harness rewrites only RolePolicy"
    );
    assert_eq!(
        adaptation.depends_on_removed,
        BTreeSet::from([
            (
                "PromotionStateMachine".to_owned(),
                "QuarantineRepositoryTemplate".to_owned()
            ),
            (
                "PromotionStateMachine".to_owned(),
                "TrustedRepositoryTemplate".to_owned()
            ),
        ])
    );

    // The translation as it is: moto skips exactly those, and reaches CREATE_COMPLETE anyway.
    let moto = start_enforcing_moto();
    let admin = bootstrap_admin(&moto);
    let deployed = deploy(&moto, &admin, &translated);
    let expected = cfn::resources_at_defaults(&translated);
    let skipped: BTreeSet<String> = expected
        .keys()
        .filter(|id| !deployed.resources.contains_key(*id))
        .cloned()
        .collect();
    let adapted: BTreeSet<String> = dropped
        .iter()
        .map(|(id, _)| id.clone())
        .chain(
            role_policies
                .iter()
                .filter(|(id, _, _)| expected.contains_key(id))
                .map(|(id, _, _)| id.clone()),
        )
        .collect();
    assert_eq!(
        skipped, adapted,
        "moto skipped other resources than the harness drops and rewrites"
    );
    assert!(
        deployed
            .resources
            .keys()
            .all(|id| expected.contains_key(id)),
        "moto created resources whose condition is false: {:?}",
        deployed.resources.keys()
    );
    let log = moto.log();
    for (_, kind, _) in cfn::DROPPED
        .iter()
        .chain(&[("", "AWS::IAM::RolePolicy", "")])
    {
        assert!(
            log.contains(&format!("Tried to parse {kind} but it's not supported")),
            "moto did not report skipping {kind}"
        );
    }
    eprintln!(
        "moto skips exactly the adapted resources: ok in {:.1?}",
        started.elapsed()
    );
}

#[test]
fn the_deployed_stack_is_the_template() {
    let started = Instant::now();
    let s = Stand::deploy();
    let t = &s.template;

    // Every resource whose condition holds, under its type (the rewritten ones as
    // AWS::IAM::Policy), nothing else; DescribeStackResources agrees.
    let listed: BTreeMap<String, String> = s
        .deployed
        .resources
        .iter()
        .map(|(id, (kind, _))| (id.clone(), kind.clone()))
        .collect();
    assert_eq!(
        listed,
        cfn::resources_at_defaults(t),
        "the stack's resources"
    );
    let described = s.admin_call(
        "cloudformation",
        "DescribeStackResources",
        json!({"StackName": cfn::STACK}),
    );
    let described: BTreeSet<String> = described["StackResources"]
        .as_array()
        .expect("StackResources")
        .iter()
        .filter_map(|r| r["LogicalResourceId"].as_str())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(described, listed.keys().cloned().collect::<BTreeSet<_>>());
    assert!(
        s.deployed
            .stack_id
            .contains(&format!(":stack/{}/", cfn::STACK))
    );

    let names = s.names();
    let resolve = |v: &Value| cfn::resolve(t, v, &names).expect("a value");
    let key_arn = names["SigningKey.Arn"].clone();
    let role_arn = |id: &str| names[&format!("{id}.Arn")].clone();
    let function_arn = |id: &str| names[&format!("{id}.Arn")].clone();

    // Functions.
    let mut calls = Vec::new();
    for f in &FUNCTIONS {
        calls.push((
            f.id.to_owned(),
            "lambda",
            "GetFunction",
            json!({"FunctionName": s.deployed.physical(f.id)}),
        ));
    }
    let got = s.admin_batch(calls);
    for f in &FUNCTIONS {
        let c = &got[f.id]["Configuration"];
        let p = &t["Resources"][f.id]["Properties"];
        assert_eq!(c["Role"], role_arn(f.role), "{}: its own role", f.id);
        assert_eq!(c["Runtime"], "provided.al2023", "{}", f.id);
        assert_eq!(c["Handler"], "bootstrap", "{}", f.id);
        assert_eq!(c["Architectures"], json!(["arm64"]), "{}", f.id);
        assert_eq!(c["TracingConfig"], json!({"Mode": "Active"}), "{}", f.id);
        assert_eq!(c["MemorySize"], 128, "{}", f.id);
        assert_eq!(c["Timeout"], f.timeout, "{}", f.id);
        assert_eq!(c["Description"], p["Description"], "{}", f.id);
        let env = c["Environment"]["Variables"]
            .as_object()
            .unwrap_or_else(|| panic!("{}: no environment", f.id));
        // As the template declares them (conditional ones at the defaults)... moto keeps a
        // Number parameter's value as a number; CloudFormation passes text, as Lambda's API
        // takes it (so compare as text).
        let env: serde_json::Map<String, Value> = env
            .iter()
            .map(|(k, v)| {
                let v = v
                    .as_number()
                    .map_or_else(|| v.clone(), |n| json!(n.to_string()));
                (k.clone(), v)
            })
            .collect();
        assert_eq!(
            Value::Object(env.clone()),
            resolve(&p["Environment"]["Variables"]),
            "{}: environment",
            f.id
        );
        // ...and as infra/README.md says.
        for (k, v) in [
            ("PIPELINE_REGISTRY", REGISTRY),
            ("INGRESS_PREFIX", INGRESS),
            ("QUARANTINE_PREFIX", QUARANTINE),
            ("TRUSTED_PREFIX", TRUSTED),
        ] {
            assert_eq!(env.get(k), Some(&json!(v)), "{}: {k}", f.id);
        }
        for (k, v) in f.fixed {
            let want = v.map_or_else(|| key_arn.clone(), str::to_owned);
            assert_eq!(env.get(*k), Some(&json!(want)), "{}: {k}", f.id);
        }
        for k in RESTRICTED_VARIABLES {
            if !f.fixed.iter().any(|(name, _)| *name == k) {
                assert!(env.get(k).is_none(), "{}: must not have {k}", f.id);
            }
        }
        for k in ["ENVIRONMENTS", "SOURCE_ECR_ROLES"] {
            assert!(
                env.get(k).is_none(),
                "{}: {k} is unset at the defaults",
                f.id
            );
        }
    }

    // Roles: trust, inline policies (the rewritten RolePolicy resources on theirs).
    let mut calls = Vec::new();
    for (id, _, policies) in ROLES {
        let name = s.deployed.physical(id).to_owned();
        calls.push((
            format!("{id} role"),
            "iam",
            "GetRole",
            json!({"RoleName": name}),
        ));
        calls.push((
            format!("{id} list"),
            "iam",
            "ListRolePolicies",
            json!({"RoleName": name}),
        ));
        for p in policies {
            calls.push((
                format!("{id} {p}"),
                "iam",
                "GetRolePolicy",
                json!({"RoleName": name, "PolicyName": p}),
            ));
        }
    }
    let got = s.admin_batch(calls);
    let roles_in_stack: BTreeSet<&str> = listed
        .iter()
        .filter(|(_, k)| *k == "AWS::IAM::Role")
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(
        roles_in_stack,
        ROLES.iter().map(|r| r.0).collect::<BTreeSet<_>>(),
        "the stack's roles"
    );
    for (id, service, policies) in ROLES {
        let role = &got[&format!("{id} role")]["Role"];
        let tmpl = &t["Resources"][id]["Properties"];
        let trust = &role["AssumeRolePolicyDocument"];
        assert_eq!(
            trust,
            &resolve(&tmpl["AssumeRolePolicyDocument"]),
            "{id}: trust"
        );
        let principals: Vec<&Value> = trust["Statement"]
            .as_array()
            .expect("Statement")
            .iter()
            .map(|st| &st["Principal"])
            .collect();
        assert_eq!(
            principals,
            vec![&json!({"Service": service})],
            "{id}: trusted by"
        );
        let names_listed: BTreeSet<&str> = got[&format!("{id} list")]["PolicyNames"]
            .as_array()
            .expect("PolicyNames")
            .iter()
            .map(|n| n.as_str().expect("name"))
            .collect();
        assert_eq!(
            names_listed,
            policies.iter().copied().collect::<BTreeSet<_>>(),
            "{id}: inline policies"
        );
        // The documents the template gives this role: its own Policies, and every policy
        // resource (a rewritten RolePolicy) naming it.
        let mut declared: BTreeMap<String, Value> = tmpl["Policies"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        (
                            p["PolicyName"].as_str().expect("PolicyName").to_owned(),
                            resolve(&p["PolicyDocument"]),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (pid, kind) in &listed {
            let r = &t["Resources"][pid];
            if kind == "AWS::IAM::Policy" && r["Properties"]["Roles"] == json!([{"Ref": id}]) {
                declared.insert(
                    r["Properties"]["PolicyName"]
                        .as_str()
                        .expect("PolicyName")
                        .to_owned(),
                    resolve(&r["Properties"]["PolicyDocument"]),
                );
            }
        }
        assert_eq!(
            declared.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            names_listed,
            "{id}"
        );
        for (name, doc) in &declared {
            let stored = &got[&format!("{id} {name}")]["PolicyDocument"];
            assert_eq!(stored, doc, "{id}: inline policy {name}");
            assert!(
                !stored.to_string().contains("${"),
                "{id}: {name} unresolved"
            );
        }
    }
    // The key permissions land on their roles, naming the deployed key and sign function.
    let sign_key = &got["SignFunctionRole sign-with-key"]["PolicyDocument"]["Statement"][0];
    assert_eq!(sign_key["Resource"], key_arn);
    assert_eq!(
        sign_key["Action"],
        json!(["kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"])
    );
    let guard = &got[&format!("SignFunctionRole {SIGN_GUARD}")]["PolicyDocument"]["Statement"][0];
    assert_eq!(guard["Effect"], "Deny");
    assert_eq!(guard["Action"], "kms:Sign");
    assert_eq!(guard["Resource"], key_arn);
    let sign_arn = function_arn("SignFunction");
    assert_eq!(
        guard["Condition"]["ArnNotLike"]["lambda:SourceFunctionArn"],
        json!([sign_arn.clone(), format!("{sign_arn}:*")])
    );
    let retag_key =
        &got["RetagForEnvironmentFunctionRole read-public-key"]["PolicyDocument"]["Statement"][0];
    assert_eq!(retag_key["Resource"], key_arn);
    assert_eq!(
        retag_key["Action"],
        json!(["kms:GetPublicKey", "kms:DescribeKey"])
    );
    let start = &got["EventsStartExecutionRole start-promotion"]["PolicyDocument"]["Statement"];
    assert_eq!(
        start,
        &json!([{
            "Sid": "StartPromotion",
            "Effect": "Allow",
            "Action": "states:StartExecution",
            "Resource": s.deployed.physical("PromotionStateMachine"),
        }])
    );

    // State machines, rules, bus, key, queue, log groups.
    let promotion_arn = s.deployed.physical("PromotionStateMachine").to_owned();
    let sync_arn = s.deployed.physical("SyncStateMachine").to_owned();
    let bus = format!("{}-promotion", cfn::STACK);
    let queue_url = s.deployed.physical("EventsDeadLetterQueue").to_owned();
    let got = s.admin_batch(vec![
        (
            "promotion".into(),
            "stepfunctions",
            "DescribeStateMachine",
            json!({"stateMachineArn": promotion_arn}),
        ),
        (
            "sync".into(),
            "stepfunctions",
            "DescribeStateMachine",
            json!({"stateMachineArn": sync_arn}),
        ),
        (
            "rules default".into(),
            "events",
            "ListRules",
            json!({"EventBusName": "default"}),
        ),
        (
            "rules bus".into(),
            "events",
            "ListRules",
            json!({"EventBusName": bus}),
        ),
        (
            "bus".into(),
            "events",
            "DescribeEventBus",
            json!({"Name": bus}),
        ),
        (
            "key".into(),
            "kms",
            "DescribeKey",
            json!({"KeyId": key_arn}),
        ),
        (
            "key policy".into(),
            "kms",
            "GetKeyPolicy",
            json!({"KeyId": key_arn, "PolicyName": "default"}),
        ),
        (
            "aliases".into(),
            "kms",
            "ListAliases",
            json!({"KeyId": key_arn}),
        ),
        (
            "queue".into(),
            "sqs",
            "GetQueueAttributes",
            json!({"QueueUrl": queue_url, "AttributeNames": ["All"]}),
        ),
        ("log groups".into(), "logs", "DescribeLogGroups", json!({})),
    ]);

    let promotion = &got["promotion"];
    assert_eq!(promotion["type"], "STANDARD");
    assert_eq!(promotion["roleArn"], role_arn("StateMachineRole"));
    assert_eq!(promotion["tracingConfiguration"], json!({"enabled": true}));
    let promotion_logs = format!(
        "arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/vendedlogs/states/{}-promotion:*",
        cfn::STACK
    );
    assert_eq!(
        promotion["loggingConfiguration"],
        json!({"level": "ERROR", "includeExecutionData": false,
               "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": promotion_logs}}]})
    );
    let definition: Value =
        serde_json::from_str(promotion["definition"].as_str().expect("definition"))
            .expect("the promotion definition is JSON");
    assert_eq!(
        definition,
        expected_definition(
            "statemachine/promotion.asl.json",
            &t["Resources"]["PromotionStateMachine"]["Properties"]["DefinitionSubstitutions"],
            &resolve
        ),
        "the promotion definition, substituted"
    );
    let mut resources = BTreeSet::new();
    collect_strings(&definition, "Resource", &mut resources);
    let lambdas: BTreeSet<String> = resources
        .iter()
        .filter(|r| r.starts_with("arn:aws:lambda:"))
        .cloned()
        .collect();
    assert_eq!(
        lambdas,
        FUNCTIONS[..5].iter().map(|f| function_arn(f.id)).collect(),
        "the promotion's Task resources are the five step functions"
    );
    assert!(
        resources
            .iter()
            .all(|r| r.starts_with("arn:aws:lambda:") || r == "arn:aws:states:::events:putEvents"),
        "{resources:?}"
    );
    let mut buses = BTreeSet::new();
    collect_strings(&definition, "EventBusName", &mut buses);
    assert_eq!(
        buses,
        BTreeSet::from([bus.clone()]),
        "outcome events go to the pipeline's bus"
    );
    assert!(
        !promotion["definition"]
            .as_str()
            .unwrap_or_default()
            .contains("${")
    );

    let sync = &got["sync"];
    assert_eq!(sync["name"], format!("{}-sync", cfn::STACK));
    assert_eq!(sync["type"], "STANDARD");
    assert_eq!(sync["roleArn"], role_arn("SyncStateMachineRole"));
    assert_eq!(sync["tracingConfiguration"], json!({"enabled": true}));
    assert_eq!(
        sync["loggingConfiguration"]["destinations"][0]["cloudWatchLogsLogGroup"]["logGroupArn"],
        format!(
            "arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/vendedlogs/states/{}-sync:*",
            cfn::STACK
        )
    );
    assert_eq!(sync["loggingConfiguration"]["level"], "ERROR");
    let definition: Value = serde_json::from_str(sync["definition"].as_str().expect("definition"))
        .expect("the sync definition is JSON");
    assert_eq!(
        definition,
        expected_definition(
            "statemachine/sync.asl.json",
            &t["Resources"]["SyncStateMachine"]["Properties"]["DefinitionSubstitutions"],
            &resolve
        ),
        "the sync definition, substituted"
    );
    let mut resources = BTreeSet::new();
    collect_strings(&definition, "Resource", &mut resources);
    assert_eq!(
        resources,
        BTreeSet::from([
            function_arn("SyncPlanFunction"),
            "arn:aws:states:::states:startExecution.sync:2".to_owned()
        ]),
        "sync invokes sync-plan and starts executions"
    );
    let mut started_machines = BTreeSet::new();
    collect_strings(&definition, "StateMachineArn", &mut started_machines);
    assert_eq!(started_machines, BTreeSet::from([promotion_arn.clone()]));

    // Rules: the patterns infra/README.md describes, the promotion state machine the one target.
    let queue_arn = got["queue"]["Attributes"]["QueueArn"]
        .as_str()
        .expect("QueueArn")
        .to_owned();
    let rule_names = |label: &str| -> BTreeMap<String, Value> {
        got[label]["Rules"]
            .as_array()
            .expect("Rules")
            .iter()
            .map(|r| (r["Name"].as_str().expect("Name").to_owned(), r.clone()))
            .collect()
    };
    let on_default = rule_names("rules default");
    let on_bus = rule_names("rules bus");
    let rule = |id: &str| s.deployed.physical(id).to_owned();
    assert_eq!(
        on_default.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([rule("IngressPushRule"), rule("ApprovalReferrerRule")])
    );
    assert_eq!(
        on_bus.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([rule("PromotionRequestedRule")])
    );
    let patterns = [
        (
            "IngressPushRule",
            &on_default,
            "default",
            json!({"source": ["aws.ecr"], "detail-type": ["ECR Image Action"],
                   "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"],
                              "image-tag": [{"anything-but": [""]}],
                              "repository-name": [{"prefix": INGRESS}]}}),
        ),
        (
            "ApprovalReferrerRule",
            &on_default,
            "default",
            json!({"source": ["aws.ecr"],
                   "detail-type": ["ECR Referrer Action", "ECR Image Action"],
                   "detail": {"action-type": [{"anything-but": ["DELETE", "UPDATE_STORAGE_CLASS"]}],
                              "result": ["SUCCESS"],
                              "repository-name": [{"prefix": APPROVALS}],
                              "artifact-media-type": [APPROVAL_TYPE]}}),
        ),
        (
            "PromotionRequestedRule",
            &on_bus,
            bus.as_str(),
            json!({"source": ["ecr-promotion"], "detail-type": ["Promotion Requested"]}),
        ),
    ];
    let mut calls = Vec::new();
    for (id, _, bus_name, _) in &patterns {
        calls.push((
            (*id).to_owned(),
            "events",
            "ListTargetsByRule",
            json!({"Rule": rule(id), "EventBusName": bus_name}),
        ));
    }
    let targets = s.admin_batch(calls);
    for (id, listed_rules, bus_name, pattern) in &patterns {
        let r = &listed_rules[&rule(id)];
        assert_eq!(r["State"], "ENABLED", "{id}");
        assert_eq!(r["EventBusName"], *bus_name, "{id}");
        let got_pattern: Value =
            serde_json::from_str(r["EventPattern"].as_str().expect("EventPattern"))
                .expect("pattern JSON");
        assert_eq!(&got_pattern, pattern, "{id}: pattern");
        assert_eq!(
            got_pattern,
            resolve(&t["Resources"][id]["Properties"]["EventPattern"]),
            "{id}"
        );
        let target = &targets[*id]["Targets"];
        assert_eq!(
            target,
            &resolve(&t["Resources"][id]["Properties"]["Targets"]),
            "{id}: targets as declared"
        );
        let target = target.as_array().expect("Targets");
        assert_eq!(target.len(), 1, "{id}: one target");
        assert_eq!(
            target[0]["Arn"], promotion_arn,
            "{id}: the promotion state machine"
        );
        assert_eq!(
            target[0]["RoleArn"],
            role_arn("EventsStartExecutionRole"),
            "{id}"
        );
        assert_eq!(
            target[0]["RetryPolicy"],
            json!({"MaximumRetryAttempts": 24, "MaximumEventAgeInSeconds": 3600}),
            "{id}"
        );
        assert_eq!(
            target[0]["DeadLetterConfig"],
            json!({"Arn": queue_arn}),
            "{id}"
        );
    }
    assert_eq!(got["bus"]["Name"], bus);
    assert!(
        got["bus"]["Policy"].is_null(),
        "moto got no bus policy (PromotionEventBusPolicy is dropped)"
    );

    // The signing key.
    let key = &got["key"]["KeyMetadata"];
    assert_eq!(key["KeySpec"], "ECC_NIST_P256");
    assert_eq!(key["KeyUsage"], "SIGN_VERIFY");
    assert_eq!(key["SigningAlgorithms"], json!(["ECDSA_SHA_256"]));
    assert_eq!(key["Enabled"], true);
    assert_eq!(key["KeyState"], "Enabled");
    assert_eq!(
        key["Description"],
        format!(
            "{}: cosign-compatible signatures of promoted images",
            cfn::STACK
        )
    );
    assert_eq!(
        got["aliases"]["Aliases"]
            .as_array()
            .expect("Aliases")
            .iter()
            .map(|a| a["AliasName"].clone())
            .collect::<Vec<_>>(),
        vec![json!(format!("alias/{}-signing", cfn::STACK))]
    );
    let policy: Value = serde_json::from_str(got["key policy"]["Policy"].as_str().expect("Policy"))
        .expect("the key policy is JSON");
    assert_eq!(
        policy,
        resolve(&t["Resources"]["SigningKey"]["Properties"]["KeyPolicy"]),
        "the key policy as declared"
    );
    let signers: Vec<&Value> = policy["Statement"]
        .as_array()
        .expect("Statement")
        .iter()
        .filter(|st| {
            st["Effect"] == "Allow"
                && st["Action"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!("kms:Sign")))
        })
        .map(|st| &st["Principal"])
        .collect();
    assert_eq!(
        signers,
        vec![&json!({"AWS": role_arn("SignFunctionRole")})],
        "the key policy lets the sign role alone sign"
    );

    // The dead-letter queue and the log groups.
    let queue = &got["queue"]["Attributes"];
    assert_eq!(queue["MessageRetentionPeriod"], "1209600");
    assert_eq!(queue["SqsManagedSseEnabled"], "true");
    let groups: BTreeMap<String, Value> = got["log groups"]["logGroups"]
        .as_array()
        .expect("logGroups")
        .iter()
        .map(|g| {
            (
                g["logGroupName"].as_str().expect("name").to_owned(),
                g.clone(),
            )
        })
        .collect();
    let declared_groups: BTreeSet<String> = listed
        .iter()
        .filter(|(_, k)| *k == "AWS::Logs::LogGroup")
        .map(|(id, _)| s.deployed.physical(id).to_owned())
        .collect();
    assert_eq!(
        declared_groups.len(),
        8,
        "six functions and two state machines"
    );
    assert_eq!(
        groups.keys().cloned().collect::<BTreeSet<_>>(),
        declared_groups
    );
    for (name, g) in &groups {
        assert_eq!(g["retentionInDays"], 90, "{name}");
    }

    // Outputs.
    let o = &s.deployed.outputs;
    let want = BTreeMap::from([
        ("CosignVerifyKey", format!("awskms:///{key_arn}")),
        ("DeadLetterQueueUrl", queue_url.clone()),
        ("PromotionEventBusName", bus.clone()),
        (
            "PublicKeyCommand",
            format!(
                "aws kms get-public-key --key-id {key_arn} --query PublicKey --output text | \
                 base64 -d | openssl pkey -pubin -inform DER -out cosign.pub"
            ),
        ),
        (
            "QuarantineRepositoryPrefixUri",
            format!("{REGISTRY}/{QUARANTINE}"),
        ),
        ("SigningKeyArn", key_arn.clone()),
        ("StateMachineArn", promotion_arn.clone()),
        ("SyncStateMachineArn", sync_arn.clone()),
        (
            "TrustedRepositoryPrefixUri",
            format!("{REGISTRY}/{TRUSTED}"),
        ),
    ]);
    assert_eq!(
        o.iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        want,
        "outputs"
    );
    eprintln!(
        "the deployed stack is the template: ok in {:.1?}",
        started.elapsed()
    );
}

#[test]
fn each_function_role_may_do_exactly_what_the_template_grants() {
    let started = Instant::now();
    let s = Stand::deploy();
    s.seed_repositories_and_secrets();
    let roles = s.assume_function_roles();
    let key_arn = s.key_arn();

    // Phase 1: everything, as deployed.
    let probes = probes(&roles, &key_arn, "as-deployed");
    let outcomes = run_calls(
        &s.moto,
        &probes.iter().map(|p| p.call.clone()).collect::<Vec<_>>(),
    );
    let mut wrong = Vec::new();
    let mut counted = (0, 0);
    for (p, o) in probes.iter().zip(&outcomes) {
        let allowed = expected_allowed(p.role, &p.what, p.prefix);
        check(p, o, allowed, &mut wrong, &mut counted);
    }
    assert!(
        wrong.is_empty(),
        "{} of {} probes disagree with the template's intent:\n{}",
        wrong.len(),
        probes.len(),
        wrong.join("\n")
    );
    // 68 ECR probes and 15 others are allowed (ECR_GRANTS, OTHER_GRANTS), the other 199 of
    // 6 roles x (4 repositories x 10 ECR actions + 7 others) denied.
    assert_eq!(counted, (83, 199), "allowed, denied");

    // Phase 2: without SignFunctionSourceGuard, the sign role alone may sign.
    s.admin_call(
        "iam",
        "DeleteRolePolicy",
        json!({"RoleName": s.deployed.physical("SignFunctionRole"), "PolicyName": SIGN_GUARD}),
    );
    let signs: Vec<Probe> = roles
        .iter()
        .map(|(short, creds)| Probe {
            role: short,
            what: "kms:Sign".to_owned(),
            prefix: None,
            authorized: Authorized::Success,
            call: sign_call(creds, &key_arn),
        })
        .collect();
    let outcomes = run_calls(
        &s.moto,
        &signs.iter().map(|p| p.call.clone()).collect::<Vec<_>>(),
    );
    let mut wrong = Vec::new();
    let mut counted = (0, 0);
    for (p, o) in signs.iter().zip(&outcomes) {
        check(p, o, p.role == "sign", &mut wrong, &mut counted);
    }
    assert!(wrong.is_empty(), "without the guard:\n{}", wrong.join("\n"));
    assert_eq!(counted, (1, 5), "one role signs without the guard");
    let signature = outcomes[FUNCTIONS
        .iter()
        .position(|f| f.short == "sign")
        .expect("sign")]
    .ok("kms:Sign")["Signature"]
        .clone();
    assert!(
        signature["$base64"].as_str().is_some_and(|b| b.len() > 60),
        "{signature}"
    );
    eprintln!("function roles: ok in {:.1?}", started.elapsed());
}

#[test]
fn moto_leaves_unenforced_what_the_static_checks_cover() {
    let started = Instant::now();
    let s = Stand::deploy();
    let key_arn = s.key_arn();
    let admin = &s.admin;

    // 1. The key policy grants the account no kms:Sign (AWS refuses the administrator); moto
    // ignores the key policy's Allow statements and lets the administrator's IAM policy sign.
    let policy: Value = serde_json::from_str(
        s.admin_call(
            "kms",
            "GetKeyPolicy",
            json!({"KeyId": key_arn, "PolicyName": "default"}),
        )["Policy"]
            .as_str()
            .expect("Policy"),
    )
    .expect("JSON");
    let root_statement = policy["Statement"]
        .as_array()
        .expect("Statement")
        .iter()
        .find(|st| st["Principal"]["AWS"] == format!("arn:aws:iam::{ACCOUNT}:root"))
        .expect("the account's statement");
    assert!(
        !root_statement["Action"]
            .as_array()
            .expect("Action")
            .contains(&json!("kms:Sign"))
    );
    run_calls(&s.moto, &[sign_call(admin, &key_arn)])[0].ok("moto lets the administrator sign");

    // 2. TrustedRepositoryTemplate's repository policy denies pushes to all but promote, sign
    // and retag (AWS refuses the administrator); moto stores it and never consults it.
    let template_policy = {
        let t = &s.template_before_adaptation;
        let text = t["Resources"]["TrustedRepositoryTemplate"]["Properties"]["RepositoryPolicy"]
            ["Fn::Sub"]
            .as_str()
            .expect("RepositoryPolicy Fn::Sub")
            .to_owned();
        cfn::substitute(&text, &s.names())
    };
    let parsed: Value = serde_json::from_str(&template_policy).expect("policy JSON");
    assert_eq!(
        parsed["Statement"][0]["Sid"],
        "OnlyThePipelineWritesTrusted"
    );
    assert_eq!(parsed["Statement"][0]["Effect"], "Deny");
    let repo = format!("{TRUSTED}policy-probe");
    let answers = run_calls(
        &s.moto,
        &[
            Call::new(
                admin,
                "ecr",
                "CreateRepository",
                json!({"repositoryName": repo}),
            ),
            Call::new(
                admin,
                "ecr",
                "SetRepositoryPolicy",
                json!({"repositoryName": repo, "policyText": template_policy}),
            ),
            Call::new(
                admin,
                "ecr",
                "PutImage",
                json!({"repositoryName": repo, "imageManifest": manifest(), "imageTag": "admin"}),
            ),
        ],
    );
    for (a, what) in answers
        .iter()
        .zip(["CreateRepository", "SetRepositoryPolicy", "PutImage"])
    {
        a.ok(&format!(
            "moto lets the administrator {what} despite the repository policy"
        ));
    }

    // 3. A Deny whose condition cannot hold (ArnLike on another principal) denies anyway: moto
    // evaluates StringEquals only and takes every other condition as met.
    let user = "condition-probe";
    let nobody = format!("arn:aws:iam::{ACCOUNT}:role/nobody");
    let doc = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": "*"},
        {"Effect": "Deny", "Action": "kms:DescribeKey", "Resource": "*",
         "Condition": {"ArnLike": {"aws:PrincipalArn": nobody}}},
    ]});
    let answers = run_calls(
        &s.moto,
        &[
            Call::new(admin, "iam", "CreateUser", json!({"UserName": user})),
            Call::new(
                admin,
                "iam",
                "PutUserPolicy",
                json!({"UserName": user, "PolicyName": "p", "PolicyDocument": doc.to_string()}),
            ),
            Call::new(admin, "iam", "CreateAccessKey", json!({"UserName": user})),
        ],
    );
    let probe_user = Credentials::from_json(&answers[2].ok("CreateAccessKey")["AccessKey"]);
    let o = run_calls(
        &s.moto,
        &[Call::new(
            &probe_user,
            "kms",
            "DescribeKey",
            json!({"KeyId": key_arn}),
        )],
    );
    assert!(
        o[0].is_access_denied(),
        "moto evaluated the ArnLike condition now (update deploy.rs's doc): {:?}",
        o[0]
    );

    // 4. Other services are evaluated against "*": EventsStartExecutionRole may start the
    // promotion state machine (its only statement), and moto denies it.
    let role = s.deployed.physical("EventsStartExecutionRole");
    let creds = s.assume(role, "events");
    let o = run_calls(
        &s.moto,
        &[Call::new(
            &creds,
            "stepfunctions",
            "StartExecution",
            json!({"stateMachineArn": s.deployed.physical("PromotionStateMachine")}),
        )],
    );
    assert!(
        o[0].is_access_denied(),
        "moto authorizes Step Functions per resource now (update deploy.rs's doc): {:?}",
        o[0]
    );

    // 5. inspector2:ListCoverage does not exist in moto (no route: 404 before authorization).
    let o = run_calls(
        &s.moto,
        &[Call::new(admin, "inspector2", "ListCoverage", json!({}))],
    );
    assert!(
        matches!(o[0], Outcome::Err { status: 404, .. }),
        "moto has ListCoverage now (probe it in each_function_role_...): {:?}",
        o[0]
    );
    eprintln!("moto's limits: ok in {:.1?}", started.elapsed());
}

/// Why the stand-in needs `moto_deploy_server.py`'s first correction: moto as
/// `scripts/moto_server.py` starts it evaluates ECR calls against `*`, so an IAM policy allowing
/// exactly one repository allows nothing (and one denying exactly one denies nothing).
#[test]
fn plain_moto_evaluates_ecr_permissions_against_no_repository() {
    let moto = Moto::start_with_env(&[(
        "INITIAL_NO_AUTH_ACTION_COUNT",
        &cfn::BOOTSTRAP_CALLS.to_string(),
    )]);
    let admin = bootstrap_admin(&moto);
    let repo = format!("{QUARANTINE}app");
    let arn = format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repo}");
    let doc = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ecr:ListImages", "Resource": arn},
        {"Effect": "Allow", "Action": "ecr:DescribeImages", "Resource": "*"},
        {"Effect": "Deny", "Action": "ecr:DescribeImages", "Resource": arn},
    ]});
    let answers = run_calls(
        &moto,
        &[
            Call::new(
                &admin,
                "ecr",
                "CreateRepository",
                json!({"repositoryName": repo}),
            ),
            Call::new(&admin, "iam", "CreateUser", json!({"UserName": "scoped"})),
            Call::new(
                &admin,
                "iam",
                "PutUserPolicy",
                json!({"UserName": "scoped", "PolicyName": "p", "PolicyDocument": doc.to_string()}),
            ),
            Call::new(
                &admin,
                "iam",
                "CreateAccessKey",
                json!({"UserName": "scoped"}),
            ),
        ],
    );
    let user = Credentials::from_json(&answers[3].ok("CreateAccessKey")["AccessKey"]);
    let o = run_calls(
        &moto,
        &[
            Call::new(&user, "ecr", "ListImages", json!({"repositoryName": repo})),
            Call::new(
                &user,
                "ecr",
                "DescribeImages",
                json!({"repositoryName": repo}),
            ),
        ],
    );
    assert!(
        o[0].is_access_denied(),
        "plain moto allowed a repository-scoped Allow: it evaluates ECR per repository now, \
         drop correction 1 of moto_deploy_server.py: {:?}",
        o[0]
    );
    o[1].ok("plain moto ignores a repository-scoped Deny");
}

// ------------------------------------------------------------------------------------------------
// The stand-in
// ------------------------------------------------------------------------------------------------

/// moto enforcing IAM, its administrator, and the adapted stack deployed there.
struct Stand {
    moto: Moto,
    admin: Credentials,
    template: Value,
    template_before_adaptation: Value,
    deployed: Deployed,
}

impl Stand {
    fn deploy() -> Stand {
        let moto = start_enforcing_moto();
        let admin = bootstrap_admin(&moto);
        let translated = cfn::translated();
        let (template, adaptation) = cfn::adapt_for_moto(&translated);
        assert_eq!(adaptation.dropped.len(), cfn::DROPPED.len());
        let deployed = deploy(&moto, &admin, &template);
        Stand {
            moto,
            admin,
            template,
            template_before_adaptation: translated,
            deployed,
        }
    }

    fn admin_call(&self, service: &str, op: &str, params: Value) -> Value {
        cfn::call(&self.moto, &self.admin, service, op, params)
    }

    /// Labelled calls as the administrator, each of which must succeed.
    fn admin_batch(&self, calls: Vec<(String, &str, &str, Value)>) -> BTreeMap<String, Value> {
        let made: Vec<Call> = calls
            .iter()
            .map(|(_, svc, op, params)| Call::new(&self.admin, svc, op, params.clone()))
            .collect();
        let outcomes = run_calls(&self.moto, &made);
        calls
            .into_iter()
            .zip(outcomes)
            .map(|((label, svc, op, _), o)| {
                let v = o.ok(&format!("{label}: {svc}:{op}")).clone();
                (label, v)
            })
            .collect()
    }

    fn key_arn(&self) -> String {
        self.admin_call(
            "kms",
            "DescribeKey",
            json!({"KeyId": self.deployed.physical("SigningKey")}),
        )["KeyMetadata"]["Arn"]
            .as_str()
            .expect("Arn")
            .to_owned()
    }

    /// Everything `Ref`, `Fn::GetAtt` and `Fn::Sub` may name: parameters at their defaults,
    /// pseudo parameters, each resource's `Ref` value (its physical id) and the attributes the
    /// template uses, read back from moto's APIs.
    fn names(&self) -> BTreeMap<String, String> {
        let mut names = cfn::variables(&self.template);
        let mut calls = Vec::new();
        for (id, (kind, physical)) in &self.deployed.resources {
            names.insert(id.clone(), physical.clone());
            let call = match kind.as_str() {
                "AWS::IAM::Role" => Some(("iam", "GetRole", json!({"RoleName": physical}))),
                "AWS::Lambda::Function" => {
                    Some(("lambda", "GetFunction", json!({"FunctionName": physical})))
                }
                "AWS::KMS::Key" => Some(("kms", "DescribeKey", json!({"KeyId": physical}))),
                "AWS::Events::EventBus" => {
                    Some(("events", "DescribeEventBus", json!({"Name": physical})))
                }
                "AWS::SQS::Queue" => Some((
                    "sqs",
                    "GetQueueAttributes",
                    json!({"QueueUrl": physical, "AttributeNames": ["QueueArn"]}),
                )),
                "AWS::StepFunctions::StateMachine" => Some((
                    "stepfunctions",
                    "DescribeStateMachine",
                    json!({"stateMachineArn": physical}),
                )),
                "AWS::Logs::LogGroup" => Some((
                    "logs",
                    "DescribeLogGroups",
                    json!({"logGroupNamePrefix": physical}),
                )),
                "AWS::Events::Rule" => {
                    let bus = self.template["Resources"][id]["Properties"]["EventBusName"].clone();
                    let bus = cfn::resolve(&self.template, &bus, &names).expect("bus");
                    Some((
                        "events",
                        "DescribeRule",
                        json!({"Name": physical, "EventBusName": bus}),
                    ))
                }
                "AWS::KMS::Alias" | "AWS::IAM::Policy" => None,
                other => panic!("{id}: a resource type the test does not read back yet: {other}"),
            };
            if let Some((svc, op, params)) = call {
                calls.push((id.clone(), svc, op, params));
            }
        }
        let kinds: BTreeMap<String, String> = self
            .deployed
            .resources
            .iter()
            .map(|(id, (k, _))| (id.clone(), k.clone()))
            .collect();
        for (id, v) in self.admin_batch(calls) {
            let physical = self.deployed.physical(&id).to_owned();
            let attrs: Vec<(&str, Value)> = match kinds[&id].as_str() {
                "AWS::IAM::Role" => vec![("Arn", v["Role"]["Arn"].clone())],
                "AWS::Lambda::Function" => {
                    vec![("Arn", v["Configuration"]["FunctionArn"].clone())]
                }
                "AWS::KMS::Key" => vec![("Arn", v["KeyMetadata"]["Arn"].clone())],
                "AWS::Events::EventBus" => {
                    vec![("Arn", v["Arn"].clone()), ("Name", v["Name"].clone())]
                }
                "AWS::SQS::Queue" => vec![
                    ("Arn", v["Attributes"]["QueueArn"].clone()),
                    (
                        "QueueName",
                        json!(physical.rsplit('/').next().expect("queue name")),
                    ),
                ],
                "AWS::StepFunctions::StateMachine" => vec![("Name", v["name"].clone())],
                "AWS::Logs::LogGroup" => {
                    let g = v["logGroups"]
                        .as_array()
                        .expect("logGroups")
                        .iter()
                        .find(|g| g["logGroupName"] == physical)
                        .unwrap_or_else(|| panic!("no log group {physical}"))
                        .clone();
                    // The documented GetAtt value (`...:log-group:<name>:*`), which moto's
                    // DescribeLogGroups calls `arn`.
                    vec![("Arn", g["arn"].clone())]
                }
                "AWS::Events::Rule" => vec![("Arn", v["Arn"].clone())],
                _ => vec![],
            };
            for (attr, value) in attrs {
                names.insert(
                    format!("{id}.{attr}"),
                    value
                        .as_str()
                        .unwrap_or_else(|| panic!("{id}.{attr}: {value}"))
                        .to_owned(),
                );
            }
        }
        names
    }

    /// sts:AssumeRole into role `name` as the administrator (see [`Stand::assume_all`]).
    fn assume(&self, name: &str, session: &str) -> Credentials {
        self.assume_all(&[(name, session)]).remove(0)
    }

    /// sts:AssumeRole into each (role name, session name) as the administrator, after making the
    /// administrator the one principal each role's trust policy names (only Lambda, the states or
    /// the events service may assume the stack's roles in AWS); checks each session's identity.
    fn assume_all(&self, roles: &[(&str, &str)]) -> Vec<Credentials> {
        let trust = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": admin_arn()}, "Action": "sts:AssumeRole"}]});
        let arn = |name: &str| format!("arn:aws:iam::{ACCOUNT}:role/{name}");
        let mut calls = Vec::new();
        for (name, _) in roles {
            calls.push((
                format!("trust {name}"),
                "iam",
                "UpdateAssumeRolePolicy",
                json!({"RoleName": name, "PolicyDocument": trust.to_string()}),
            ));
        }
        for (name, session) in roles {
            calls.push((
                format!("assume {name}"),
                "sts",
                "AssumeRole",
                json!({"RoleArn": arn(name), "RoleSessionName": session}),
            ));
        }
        let answers = self.admin_batch(calls);
        let creds: Vec<Credentials> = roles
            .iter()
            .map(|(name, _)| {
                Credentials::from_json(&answers[&format!("assume {name}")]["Credentials"])
            })
            .collect();
        let me = run_calls(
            &self.moto,
            &creds
                .iter()
                .map(|c| Call::new(c, "sts", "GetCallerIdentity", json!({})))
                .collect::<Vec<_>>(),
        );
        for ((name, session), o) in roles.iter().zip(&me) {
            assert_eq!(
                o.ok("sts:GetCallerIdentity")["Arn"],
                format!("arn:aws:sts::{ACCOUNT}:assumed-role/{name}/{session}")
            );
        }
        creds
    }

    /// The six function roles' credentials, by short name (each role's trust is checked to be
    /// Lambda's alone first).
    fn assume_function_roles(&self) -> Vec<(&'static str, Credentials)> {
        let got = self.admin_batch(
            FUNCTIONS
                .iter()
                .map(|f| {
                    let name = self.deployed.physical(f.role);
                    (
                        f.role.to_owned(),
                        "iam",
                        "GetRole",
                        json!({"RoleName": name}),
                    )
                })
                .collect(),
        );
        for f in &FUNCTIONS {
            assert_eq!(
                got[f.role]["Role"]["AssumeRolePolicyDocument"]["Statement"],
                json!([{"Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole"}]),
                "{}: only Lambda assumes it",
                f.role
            );
        }
        let roles: Vec<(&str, &str)> = FUNCTIONS
            .iter()
            .map(|f| (self.deployed.physical(f.role), f.short))
            .collect();
        FUNCTIONS
            .iter()
            .map(|f| f.short)
            .zip(self.assume_all(&roles))
            .collect()
    }

    /// One repository under each prefix (`<prefix>app`, an image tagged `seed` in each), the
    /// source-credential secret for ghcr.io and one outside the prefix.
    fn seed_repositories_and_secrets(&self) {
        let mut calls = Vec::new();
        for prefix in PREFIXES {
            let repo = format!("{prefix}app");
            calls.push((
                format!("create {repo}"),
                "ecr",
                "CreateRepository",
                json!({"repositoryName": repo}),
            ));
            calls.push((
                format!("seed {repo}"),
                "ecr",
                "PutImage",
                json!({"repositoryName": repo, "imageManifest": manifest(), "imageTag": "seed"}),
            ));
        }
        for name in [
            format!("{SECRET_PREFIX}ghcr.io"),
            "elsewhere/ghcr.io".to_owned(),
        ] {
            calls.push((
                name.clone(),
                "secretsmanager",
                "CreateSecret",
                json!({"Name": name, "SecretString": "{\"username\":\"u\",\"accessToken\":\"t\"}"}),
            ));
        }
        self.admin_batch(calls);
    }
}

// ------------------------------------------------------------------------------------------------
// Probes
// ------------------------------------------------------------------------------------------------

/// What "allowed" looks like for a probe: moto answers success, or (where moto lacks the
/// operation or the probe names nothing real) a specific error that comes only after
/// authorization.
#[derive(Clone, Copy, Debug)]
enum Authorized {
    Success,
    /// ecr:UploadLayerPart/CompleteLayerUpload of an upload that does not exist.
    ErrorCode(&'static str),
    /// ecr:GetDownloadUrlForLayer: moto authorizes, then raises NotImplementedError.
    NotImplemented,
}

struct Probe {
    role: &'static str,
    what: String,
    prefix: Option<&'static str>,
    authorized: Authorized,
    call: Call,
}

/// SHA-256 of `{}`, the manifest's config.
const EMPTY_JSON_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

fn manifest() -> String {
    // An OCI image manifest with an empty config and no layers (moto checks its JSON only).
    json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": EMPTY_JSON_DIGEST,
                      "size": 2},
           "layers": []})
    .to_string()
}

fn sign_call(creds: &Credentials, key_arn: &str) -> Call {
    Call::new(
        creds,
        "kms",
        "Sign",
        json!({"KeyId": key_arn, "Message": bytes_param(b"probe"), "MessageType": "RAW",
               "SigningAlgorithm": "ECDSA_SHA_256"}),
    )
}

/// Every role × (every ECR action on a repository under every prefix, and every other probe).
fn probes(roles: &[(&'static str, Credentials)], key_arn: &str, phase: &str) -> Vec<Probe> {
    let digest = format!("sha256:{}", "0".repeat(64));
    let mut out = Vec::new();
    for (role, creds) in roles {
        for prefix in PREFIXES {
            let repo = format!("{prefix}app");
            for action in ECR_PROBES {
                let (params, authorized) = match action {
                    "BatchGetImage" => (
                        json!({"repositoryName": repo, "imageIds": [{"imageTag": "seed"}]}),
                        Authorized::Success,
                    ),
                    "GetDownloadUrlForLayer" => (
                        json!({"repositoryName": repo, "layerDigest": digest}),
                        Authorized::NotImplemented,
                    ),
                    "BatchCheckLayerAvailability" => (
                        json!({"repositoryName": repo, "layerDigests": [digest]}),
                        Authorized::Success,
                    ),
                    "ListImages" | "DescribeImages" | "InitiateLayerUpload" => {
                        (json!({"repositoryName": repo}), Authorized::Success)
                    }
                    "UploadLayerPart" => (
                        json!({"repositoryName": repo, "uploadId": "no-such-upload",
                               "partFirstByte": 0, "partLastByte": 0,
                               "layerPartBlob": bytes_param(b"x")}),
                        Authorized::ErrorCode("UploadNotFoundException"),
                    ),
                    "CompleteLayerUpload" => (
                        json!({"repositoryName": repo, "uploadId": "no-such-upload",
                               "layerDigests": [digest]}),
                        Authorized::ErrorCode("UploadNotFoundException"),
                    ),
                    "PutImage" => (
                        json!({"repositoryName": repo, "imageManifest": manifest(),
                               "imageTag": format!("{phase}-{role}")}),
                        Authorized::Success,
                    ),
                    "CreateRepository" => (
                        json!({"repositoryName": format!("{prefix}created-by-{role}")}),
                        Authorized::Success,
                    ),
                    other => panic!("no probe for {other}"),
                };
                out.push(Probe {
                    role,
                    what: format!("ecr:{action}"),
                    prefix: Some(prefix),
                    authorized,
                    call: Call::new(creds, "ecr", action, params),
                });
            }
        }
        for what in OTHER_PROBES {
            let call = match what {
                "ecr:GetAuthorizationToken" => {
                    Call::new(creds, "ecr", "GetAuthorizationToken", json!({}))
                }
                "kms:Sign" => sign_call(creds, key_arn),
                "kms:GetPublicKey" => {
                    Call::new(creds, "kms", "GetPublicKey", json!({"KeyId": key_arn}))
                }
                "kms:DescribeKey" => {
                    Call::new(creds, "kms", "DescribeKey", json!({"KeyId": key_arn}))
                }
                "inspector2:ListFindings" => {
                    Call::new(creds, "inspector2", "ListFindings", json!({}))
                }
                "secretsmanager:GetSecretValue source" => Call::new(
                    creds,
                    "secretsmanager",
                    "GetSecretValue",
                    json!({"SecretId": format!("{SECRET_PREFIX}ghcr.io")}),
                ),
                "secretsmanager:GetSecretValue elsewhere" => Call::new(
                    creds,
                    "secretsmanager",
                    "GetSecretValue",
                    json!({"SecretId": "elsewhere/ghcr.io"}),
                ),
                other => panic!("no probe for {other}"),
            };
            out.push(Probe {
                role,
                what: what.to_owned(),
                prefix: None,
                authorized: Authorized::Success,
                call,
            });
        }
    }
    out
}

/// Whether `role` may make probe `what` (on a repository under `prefix`), per [`ECR_GRANTS`]
/// and [`OTHER_GRANTS`].
fn expected_allowed(role: &str, what: &str, prefix: Option<&str>) -> bool {
    match prefix {
        Some(prefix) => {
            let action = what.strip_prefix("ecr:").expect("an ECR action");
            ECR_GRANTS.iter().any(|(r, p, sets)| {
                *r == role && *p == prefix && sets.iter().any(|s| s.contains(&action))
            })
        }
        None => OTHER_GRANTS
            .iter()
            .any(|(r, whats)| *r == role && whats.contains(&what)),
    }
}

/// Records in `wrong` how probe `p`'s outcome differs from `allowed`; counts (allowed, denied).
fn check(
    p: &Probe,
    o: &Outcome,
    allowed: bool,
    wrong: &mut Vec<String>,
    counted: &mut (usize, usize),
) {
    let at = match p.prefix {
        Some(prefix) => format!("{} {} on {prefix}app", p.role, p.what),
        None => format!("{} {}", p.role, p.what),
    };
    let passed_authorization = match (p.authorized, o) {
        (_, Outcome::Ok(_)) => matches!(p.authorized, Authorized::Success),
        (Authorized::ErrorCode(want), Outcome::Err { code, .. }) => code == want,
        (Authorized::NotImplemented, Outcome::Err { status, .. }) => *status == 500,
        _ => false,
    };
    if allowed {
        if passed_authorization {
            counted.0 += 1;
        } else {
            wrong.push(format!("{at}: should be allowed, got {o:?}"));
        }
        return;
    }
    let action = p.what.split(' ').next().unwrap_or_default();
    match o {
        Outcome::Err { message, .. }
            if o.is_access_denied()
                && message.contains(":assumed-role/")
                && message.contains(&format!(
                    "/{} is not authorized to perform: {action}",
                    p.role
                )) =>
        {
            counted.1 += 1;
        }
        _ => wrong.push(format!("{at}: should be denied, got {o:?}")),
    }
}

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/// infra/template.yaml itself (long-form intrinsics, so plain YAML).
fn sam_template() -> Value {
    let text = std::fs::read_to_string(root().join("infra/template.yaml")).expect("template");
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("template YAML");
    serde_json::to_value(&yaml).expect("template as JSON")
}

/// The definition file with each `${key}` of `substitutions` replaced by its resolved value,
/// as CloudFormation does with `DefinitionSubstitutions`.
fn expected_definition(
    path: &str,
    substitutions: &Value,
    resolve: &dyn Fn(&Value) -> Value,
) -> Value {
    let mut text = std::fs::read_to_string(root().join(path)).expect("definition");
    let subs = substitutions.as_object().expect("DefinitionSubstitutions");
    for (k, v) in subs {
        let value = resolve(v);
        text = text.replace(&format!("${{{k}}}"), value.as_str().expect("a string"));
    }
    serde_json::from_str(&text).expect("definition JSON")
}

/// Every string value of a `key` field anywhere in `v`.
fn collect_strings(v: &Value, key: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == key
                    && let Some(s) = x.as_str()
                {
                    out.insert(s.to_owned());
                }
                collect_strings(x, key, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, key, out)),
        _ => {}
    }
}
