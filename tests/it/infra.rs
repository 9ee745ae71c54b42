//! infra/template.yaml: offline validation (cfn-lint, `sam validate --lint`, asl-validator, paths
//! on disk), the EventBridge rules proven against fixture events with a real matcher (moto's
//! EventBridge delivering to SQS), the IAM least-privilege properties, and the parameter
//! constraints.
//!
//! The template is read with serde_yaml_ng and uses long-form intrinsics only (`Ref:`,
//! `Fn::Sub:`, `Fn::GetAtt:`); a short-form tag (`!Ref`) fails `template()` with a clear message.

use crate::support::moto::{ACCOUNT, Moto, REGION};
use regex::Regex;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------------------
// Offline validation
// ------------------------------------------------------------------------------------------------

#[test]
fn cfn_lint_passes() {
    let cfn_lint = tool("cfn-lint", &[".work/sam-venv/bin/cfn-lint"], "sam");
    let (out, took) = run_tool(Command::new(&cfn_lint).arg(template_path()));
    assert_success("cfn-lint infra/template.yaml", &out, took);
}

/// The cfn-lint run above proves something only if cfn-lint does reject a broken template.
#[test]
fn cfn_lint_rejects_a_broken_copy_of_the_template() {
    let cfn_lint = tool("cfn-lint", &[".work/sam-venv/bin/cfn-lint"], "sam");
    let text = std::fs::read_to_string(template_path()).expect("template");
    assert!(
        text.contains("KeySpec: ECC_NIST_P256"),
        "template lost its key spec"
    );
    let broken = text.replace("KeySpec: ECC_NIST_P256", "KeySpec: ECC_NIST_P999");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("template.yaml");
    std::fs::write(&path, broken).expect("write");
    let (out, _) = run_tool(Command::new(&cfn_lint).arg(&path));
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ECC_NIST_P999"),
        "cfn-lint accepted an invalid KeySpec: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn sam_validate_lint_passes() {
    let sam = tool("sam", &[".work/sam-venv/bin/sam"], "sam");
    let (out, took) = run_tool(
        Command::new(&sam)
            .args(["validate", "--lint", "-t"])
            .arg(template_path()),
    );
    assert_success("sam validate --lint -t infra/template.yaml", &out, took);
}

#[test]
fn asl_validator_passes_on_every_definition() {
    let validator = tool(
        "asl-validator",
        &[".work/node/node_modules/.bin/asl-validator"],
        "node",
    );
    let definitions = asl_definitions();
    assert!(
        !definitions.is_empty(),
        "no statemachine/*.asl.json: the template's state machine needs its definition"
    );
    for def in &definitions {
        let (out, took) = run_tool(
            Command::new(&validator)
                .arg("--json-path")
                .arg(def)
                .env("PATH", node_path()),
        );
        assert_success(
            &format!("asl-validator --json-path {}", def.display()),
            &out,
            took,
        );
    }
    // ... and the validator does reject a broken definition (a Task without Resource).
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.asl.json");
    std::fs::write(
        &bad,
        r#"{"StartAt":"A","States":{"A":{"Type":"Task","End":true}}}"#,
    )
    .expect("write");
    let (out, _) = run_tool(
        Command::new(&validator)
            .arg("--json-path")
            .arg(&bad)
            .env("PATH", node_path()),
    );
    assert!(
        !out.status.success(),
        "asl-validator accepted a Task without Resource"
    );
}

#[test]
fn every_code_uri_and_definition_uri_exists() {
    let t = template();
    let infra = template_path().parent().expect("infra dir").to_path_buf();
    let placeholder = Regex::new(r"\$\{([A-Za-z0-9_]+)\}").expect("regex");
    let mut checked = 0;
    for (id, r) in resources(&t) {
        let props = &r["Properties"];
        if let Some(uri) = props["CodeUri"].as_str() {
            let dir = infra.join(uri);
            assert!(
                dir.join("Cargo.toml").is_file(),
                "{id}: CodeUri {uri} (relative to infra/) is not a Cargo package: no {}",
                dir.join("Cargo.toml").display()
            );
            let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str();
            assert_eq!(
                binary,
                dir.file_name().and_then(|n| n.to_str()),
                "{id}: BuildProperties.Binary must name the package's binary"
            );
            // Nothing else (no Features): SAM's `cargo lambda build --release` then enables no
            // feature, so the stand-in switches stay compiled out (tests/it/stand_ins.rs).
            let build = r["Metadata"]["BuildProperties"].as_object();
            assert!(
                build.is_some_and(|b| b.keys().all(|k| k == "Binary")),
                "{id}: BuildProperties may name only the Binary: {build:?}"
            );
            checked += 1;
        }
        if let Some(uri) = props["DefinitionUri"].as_str() {
            let file = infra.join(uri);
            assert!(
                file.is_file(),
                "{id}: DefinitionUri {uri} (relative to infra/) does not exist: {}",
                file.display()
            );
            // Every ${Name} in the definition must be substituted, or the deployed state
            // machine would carry the literal placeholder.
            let text = std::fs::read_to_string(&file).expect("definition");
            let subs = props["DefinitionSubstitutions"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let used: BTreeSet<&str> = placeholder
                .captures_iter(&text)
                .map(|c| c.get(1).expect("group").as_str())
                .collect();
            for name in &used {
                assert!(
                    subs.contains_key(*name),
                    "{id}: {uri} uses ${{{name}}}, which DefinitionSubstitutions does not define"
                );
            }
            // ... and nothing is substituted that the definition does not use (a stale
            // substitution would hide a renamed placeholder).
            for name in subs.keys() {
                assert!(
                    used.contains(name.as_str()),
                    "{id}: DefinitionSubstitutions defines {name}, which {uri} does not use"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked, 9,
        "expected seven CodeUri (five steps, the webhook, sync-plan) and two DefinitionUri \
         (promotion, sync)"
    );
}

// ------------------------------------------------------------------------------------------------
// The contract with functions/README.md
// ------------------------------------------------------------------------------------------------

/// Logical id, package (= directory = binary) and the short name functions/README.md uses.
const FUNCTIONS: [(&str, &str, &str); 5] = [
    ("CopyToQuarantineFunction", "copy-to-quarantine", "copy"),
    ("ScanGateFunction", "scan-gate", "gate"),
    (
        "PromoteAndAnnotateFunction",
        "promote-and-annotate",
        "promote",
    ),
    ("SignFunction", "sign", "sign"),
    (
        "RetagForEnvironmentFunction",
        "retag-for-environment",
        "retag",
    ),
];

/// The webhook function (not a step of the state machine; deployed with
/// `GitHubWebhookSecretArn`).
const WEBHOOK: (&str, &str, &str) = ("GitHubWebhookFunction", "github-webhook", "webhook");

/// The sync state machine's listing step (not a step of the promotion state machine).
const SYNC: (&str, &str, &str) = ("SyncPlanFunction", "sync-plan", "sync");

/// Variables the README lists that only stand-ins (tests, the demo) or Lambda itself set.
const NOT_DEPLOYED: [&str; 6] = [
    "ECR_REGISTRY_ALIASES",
    "INSPECTOR_ASSUME_SCANNED",
    "COPY_CONCURRENCY",
    "INSECURE_REGISTRIES",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
];

#[test]
fn functions_follow_the_functions_readme_contract() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    let readme = std::fs::read_to_string(root().join("functions/README.md")).expect("README");
    let vars = readme_variables(&readme);
    assert!(
        vars.len() >= 10,
        "could not read the variable table: {vars:?}"
    );

    let fns: Vec<_> = resources(&t)
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(
        fns.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        FUNCTIONS
            .iter()
            .chain([&WEBHOOK, &SYNC])
            .map(|f| f.0)
            .collect::<BTreeSet<_>>()
    );
    for (id, package, short) in FUNCTIONS.into_iter().chain([WEBHOOK, SYNC]) {
        let r = &t["Resources"][id];
        let prop = |k: &str| {
            let v = &r["Properties"][k];
            if v.is_null() { &globals[k] } else { v }
        };
        assert_eq!(prop("Runtime"), "provided.al2023", "{id}");
        assert_eq!(prop("Architectures"), &json!(["arm64"]), "{id}");
        assert_eq!(prop("Handler"), "bootstrap", "{id}");
        assert_eq!(r["Metadata"]["BuildMethod"], "rust-cargolambda", "{id}");
        assert_eq!(
            r["Properties"]["CodeUri"],
            format!("../functions/{package}"),
            "{id}"
        );
        let memory = prop("MemorySize").as_u64().expect("MemorySize");
        let timeout = prop("Timeout").as_u64().expect("Timeout");
        assert!((128..=10240).contains(&memory), "{id}: MemorySize {memory}");
        assert!((1..=900).contains(&timeout), "{id}: Timeout {timeout}");

        let got: BTreeSet<&str> = r["Properties"]["Environment"]["Variables"]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let want: BTreeSet<&str> = vars
            .iter()
            .filter(|(name, users)| {
                !NOT_DEPLOYED.contains(&name.as_str()) && users.iter().any(|u| u == short)
            })
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(
            got, want,
            "{id}: environment variables vs functions/README.md"
        );
        // The pipeline's registry is this account's, the prefixes are the parameters.
        let vars = &r["Properties"]["Environment"]["Variables"];
        let wiring = [
            (
                "PIPELINE_REGISTRY",
                json!({"Fn::Sub": "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}"}),
            ),
            ("INGRESS_PREFIX", json!({"Ref": "IngressRepositoryPrefix"})),
            (
                "QUARANTINE_PREFIX",
                json!({"Ref": "QuarantineRepositoryPrefix"}),
            ),
            ("TRUSTED_PREFIX", json!({"Ref": "TrustedRepositoryPrefix"})),
        ];
        for (var, value) in wiring {
            if want.contains(var) {
                assert_eq!(vars[var], value, "{id}: {var}");
            }
        }
    }

    // sync-plan lists what copy fetches: every variable the two share is wired as copy's (the
    // same parameters, the same Fn::If conditions), and its own three are the parameters.
    let resources_of = &t["Resources"];
    let copy = &resources_of[FUNCTIONS[0].0]["Properties"]["Environment"]["Variables"];
    let sync = resources_of[SYNC.0]["Properties"]["Environment"]["Variables"]
        .as_object()
        .expect("SyncPlanFunction: environment variables");
    for (var, value) in sync {
        match var.as_str() {
            "SYNC_MAX_CONCURRENCY" => {
                assert_eq!(value, &json!({"Ref": "SyncMaxConcurrency"}), "{var}");
            }
            "SYNC_TOLERATED_FAILURE_PERCENTAGE" => assert_eq!(
                value,
                &json!({"Ref": "SyncToleratedFailurePercentage"}),
                "{var}"
            ),
            "SYNC_MAX_PROMOTIONS" => {
                assert_eq!(value, &json!({"Ref": "SyncMaxPromotions"}), "{var}");
            }
            _ => assert_eq!(
                value, &copy[var],
                "SyncPlanFunction's {var} is not wired as CopyToQuarantineFunction's"
            ),
        }
    }

    // The contract: one paragraph per definition, naming its file and its placeholders; each
    // state machine substitutes exactly those.
    let contract = readme
        .split("## State machine contract")
        .nth(1)
        .expect("README: State machine contract section");
    let contract = contract.split("\n## ").next().unwrap_or(contract);
    let placeholder = Regex::new(r"\$\{([A-Za-z0-9_]+)\}").expect("regex");
    let names = |text: &str| -> BTreeSet<String> {
        placeholder
            .captures_iter(text)
            .map(|c| c[1].to_owned())
            .collect()
    };
    let machines: BTreeSet<&str> = resources(&t)
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::StateMachine")
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(
        machines,
        BTreeSet::from(["PromotionStateMachine", "SyncStateMachine"])
    );
    let mut documented = BTreeSet::new();
    for (id, file, count) in [
        (
            "PromotionStateMachine",
            "statemachine/promotion.asl.json",
            7,
        ),
        ("SyncStateMachine", "statemachine/sync.asl.json", 2),
    ] {
        let props = &t["Resources"][id]["Properties"];
        assert_eq!(props["DefinitionUri"], format!("../{file}"), "{id}");
        let paragraphs: Vec<&str> = contract
            .split("\n\n")
            .filter(|p| p.contains(&format!("`{file}`")))
            .collect();
        assert_eq!(
            paragraphs.len(),
            1,
            "functions/README.md: one paragraph of the state machine contract names `{file}`"
        );
        let want = names(paragraphs[0]);
        assert_eq!(
            want.len(),
            count,
            "README names {count} substitutions for {file}: {want:?}"
        );
        let subs: BTreeSet<String> = props["DefinitionSubstitutions"]
            .as_object()
            .unwrap_or_else(|| panic!("{id}: DefinitionSubstitutions"))
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            subs, want,
            "{id}: DefinitionSubstitutions vs functions/README.md"
        );
        documented.extend(want);
    }
    assert_eq!(
        names(contract),
        documented,
        "every placeholder of the contract belongs to one definition's paragraph"
    );
}

/// The end-to-end run (tests/it/support/pipeline.rs) sets no `KMS_MESSAGE_MODE`: the Sign
/// function signs in its default mode, DIGEST, against moto with DIGEST corrected
/// (scripts/moto_server.py). That proves the deployed mode only while the template
/// deploys the same: no function (nor `Globals`) may set `raw`, or anything but `digest`.
#[test]
fn the_template_signs_in_the_kms_message_mode_the_end_to_end_run_uses() {
    let t = template();
    let mut set = vec![(
        "Globals".to_owned(),
        &t["Globals"]["Function"]["Environment"]["Variables"]["KMS_MESSAGE_MODE"],
    )];
    set.extend(
        resources(&t)
            .filter(|(_, r)| {
                r["Type"] == "AWS::Serverless::Function" || r["Type"] == "AWS::Lambda::Function"
            })
            .map(|(id, r)| {
                (
                    id.clone(),
                    &r["Properties"]["Environment"]["Variables"]["KMS_MESSAGE_MODE"],
                )
            }),
    );
    for (id, mode) in &set {
        assert!(
            mode.is_null() || *mode == "digest",
            "{id}: KMS_MESSAGE_MODE is {mode}; the template must deploy digest (the default), \
             the mode the end-to-end tests sign in (raw is for KMS stand-ins only)"
        );
    }
    assert!(
        set.iter().any(|(id, _)| id == "SignFunction"),
        "no SignFunction in the template"
    );
    let harness = include_str!("support/pipeline.rs");
    assert!(
        !harness.contains("\"KMS_MESSAGE_MODE\""),
        "tests/it/support/pipeline.rs must leave KMS_MESSAGE_MODE to the function's default"
    );
}

/// `| `VAR` (, `VAR`) | user, user | meaning |` rows of the README's configuration table.
fn readme_variables(readme: &str) -> Vec<(String, Vec<String>)> {
    let name = Regex::new(r"`([A-Z][A-Z0-9_]+)`").expect("regex");
    let mut out = Vec::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(names), Some(users)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        // "all": the five pipeline steps and sync-plan (functions/README.md says so).
        let users: Vec<String> = if *users == "all" {
            FUNCTIONS
                .iter()
                .chain([&SYNC])
                .map(|f| f.2.to_owned())
                .collect()
        } else {
            users.split(',').map(|u| u.trim().to_owned()).collect()
        };
        for cap in name.captures_iter(names) {
            out.push((cap[1].to_owned(), users.clone()));
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// EventBridge rules against fixture events, with moto's matcher
// ------------------------------------------------------------------------------------------------

/// Which rules (logical ids) receive each fixture event under the parameter defaults (prefixes
/// `incoming/`, `quarantine/`, `trusted/`: application `app` is `incoming/app` → `quarantine/app`
/// → `trusted/app`).
const ROUTING: [(&str, &[&str]); 25] = [
    ("ecr-push-tagged", &["IngressPushRule"]),
    // One execution per pushed tag: the untagged platform manifests of the same multi-arch
    // push, and a digest-only push, start nothing.
    ("ecr-push-platform-manifest", &[]),
    ("ecr-push-digest-only", &[]),
    ("ecr-push-failed", &[]),
    ("ecr-delete", &[]),
    ("ecr-push-non-ingress", &[]),
    ("ecr-push-not-a-prefix-match", &[]),
    // The pipeline's own writes (quarantine/app, trusted/app) must never start another
    // promotion.
    ("ecr-push-quarantine", &[]),
    ("ecr-push-trusted", &[]),
    // A tagged image pushed into an approvals repository is neither a push nor an approval.
    ("ecr-push-approvals", &[]),
    ("ecr-referrer-approval", &["ApprovalReferrerRule"]),
    ("ecr-image-action-approval", &["ApprovalReferrerRule"]),
    ("ecr-referrer-approval-failed", &[]),
    ("ecr-referrer-approval-delete", &[]),
    ("ecr-referrer-approval-restore", &[]),
    ("ecr-referrer-approval-other-repository", &[]),
    // The pipeline's own copy of a verified approval, in trusted/app.
    ("ecr-referrer-approval-in-trusted", &[]),
    // "approvals-archive/app" starts with "approvals" but not with the prefix "approvals/".
    ("ecr-referrer-approval-not-a-prefix-match", &[]),
    // The shared trusted repository of before (infra/README.md, "Migrating from one shared
    // repository").
    ("ecr-referrer-approval-old-repository", &[]),
    ("ecr-referrer-signature", &[]),
    ("ecr-referrer-sbom", &[]),
    ("inspector2-scan", &[]),
    ("promotion-requested", &["PromotionRequestedRule"]),
    ("promotion-requested-wrong-source", &[]),
    // The pipeline's own outcome event on the same bus.
    ("image-promoted", &[]),
];

#[test]
fn event_rules_route_fixture_events_exactly() {
    let t = template();
    let params = parameter_defaults(&t);
    let rules: Vec<(String, Value)> = resources(&t)
        .filter(|(_, r)| r["Type"] == "AWS::Events::Rule")
        .filter(|(_, r)| condition_holds(&t, &params, r))
        .map(|(id, r)| {
            (
                id.clone(),
                resolve(&r["Properties"]["EventPattern"], &params),
            )
        })
        .collect();
    assert_eq!(
        rules.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        [
            "IngressPushRule",
            "ApprovalReferrerRule",
            "PromotionRequestedRule"
        ],
        "the template's rules (with default parameters)"
    );
    let fixtures = fixture_events();
    assert_eq!(
        fixtures.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        ROUTING.iter().map(|r| r.0).collect::<BTreeSet<_>>(),
        "every fixture under tests/fixtures/events has a routing expectation, and vice versa"
    );

    let moto = Moto::start();
    let mut queues = BTreeMap::new();
    for (id, pattern) in &rules {
        let url = moto.sqs("CreateQueue", json!({"QueueName": id}))["QueueUrl"]
            .as_str()
            .expect("QueueUrl")
            .to_owned();
        moto.events(
            "PutRule",
            json!({"Name": id, "EventPattern": pattern.to_string(), "State": "ENABLED"}),
        );
        let answer = moto.events(
            "PutTargets",
            json!({"Rule": id, "Targets": [{"Id": "q", "Arn": format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{id}")}]}),
        );
        assert_eq!(answer["FailedEntryCount"], 0, "PutTargets {id}: {answer}");
        queues.insert(id.clone(), url);
    }

    let mut wrong = Vec::new();
    for (name, expected) in ROUTING {
        let event = &fixtures[name];
        let answer = moto.events(
            "PutEvents",
            json!({"Entries": [{
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": event["detail"].to_string(),
                "Resources": event["resources"],
            }]}),
        );
        assert_eq!(answer["FailedEntryCount"], 0, "PutEvents {name}: {answer}");
        let mut got = BTreeSet::new();
        for (rule, url) in &queues {
            // moto delivers inside PutEvents; the wait only guards a slow machine.
            let wait = if expected.contains(&rule.as_str()) {
                5
            } else {
                0
            };
            for body in moto.receive_all(url, wait) {
                let delivered: Value = serde_json::from_str(&body).expect("event JSON");
                assert_eq!(
                    delivered["detail"], event["detail"],
                    "{rule} got {name}'s detail changed"
                );
                assert_eq!(delivered["detail-type"], event["detail-type"]);
                got.insert(rule.as_str());
            }
        }
        let expected: BTreeSet<&str> = expected.iter().copied().collect();
        if got != expected {
            wrong.push(format!(
                "{name}: expected {expected:?}, delivered to {got:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "event routing:\n{}", wrong.join("\n"));
}

fn fixture_events() -> BTreeMap<String, Value> {
    let dir = root().join("tests/fixtures/events");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("tests/fixtures/events") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("fixture");
            let event: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for key in [
                "version",
                "id",
                "detail-type",
                "source",
                "account",
                "time",
                "region",
                "resources",
                "detail",
            ] {
                assert!(!event[key].is_null(), "{}: no `{key}`", path.display());
            }
            let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
            out.insert(stem.to_owned(), event);
        }
    }
    out
}

/// The event rules start promotions with `EventsStartExecutionRole`; the schedule rule starts
/// syncs (its `Input`: the `SyncRequest` parameter) with a role of its own, which can start
/// nothing else.
#[test]
fn every_rule_targets_the_state_machine_with_a_role_retries_and_a_dead_letter_queue() {
    let t = template();
    let mut rules = BTreeSet::new();
    for (id, r) in resources(&t).filter(|(_, r)| r["Type"] == "AWS::Events::Rule") {
        rules.insert(id.as_str());
        let targets = r["Properties"]["Targets"].as_array().expect("Targets");
        assert_eq!(targets.len(), 1, "{id}");
        let target = &targets[0];
        let scheduled = !r["Properties"]["ScheduleExpression"].is_null();
        let (machine, role) = if scheduled {
            assert_eq!(id, "SyncScheduleRule", "the one scheduled rule");
            assert!(
                r["Properties"]["EventPattern"].is_null(),
                "{id}: a schedule, not a pattern"
            );
            assert_eq!(
                r["Properties"]["ScheduleExpression"],
                json!({"Ref": "SyncSchedule"})
            );
            assert_eq!(r["Condition"], "HasSyncSchedule", "{id}");
            assert_eq!(target["Input"], json!({"Ref": "SyncRequest"}), "{id}");
            ("SyncStateMachine", "EventsStartSyncRole")
        } else {
            // The event passes whole: the promotion state machine normalises it.
            assert!(
                target["Input"].is_null()
                    && target["InputPath"].is_null()
                    && target["InputTransformer"].is_null(),
                "{id}"
            );
            ("PromotionStateMachine", "EventsStartExecutionRole")
        };
        assert_eq!(target["Arn"], json!({"Ref": machine}), "{id}");
        assert_eq!(
            target["RoleArn"],
            json!({"Fn::GetAtt": [role, "Arn"]}),
            "{id}"
        );
        // The role may start that state machine and nothing else.
        let role_grants: Vec<Grant> = grants(&t)
            .into_iter()
            .filter(|g| g.holder == role)
            .collect();
        assert_eq!(role_grants.len(), 1, "{role}: one statement");
        assert_eq!(
            role_grants[0].actions(),
            ["states:StartExecution"],
            "{role}"
        );
        assert_eq!(
            role_grants[0].statement["Resource"],
            json!({"Ref": machine}),
            "{role}"
        );
        if scheduled {
            assert_eq!(
                t["Resources"][role]["Condition"], r["Condition"],
                "{role} exists exactly when {id} does"
            );
        }
        assert!(
            target["RetryPolicy"]["MaximumRetryAttempts"]
                .as_u64()
                .is_some(),
            "{id}"
        );
        assert!(
            target["RetryPolicy"]["MaximumEventAgeInSeconds"]
                .as_u64()
                .is_some(),
            "{id}"
        );
        assert_eq!(
            target["DeadLetterConfig"]["Arn"],
            json!({"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}),
            "{id}"
        );
        // AWS service events arrive on the default bus only.
        if r["Properties"]["EventPattern"]["source"][0]
            .as_str()
            .is_some_and(|s| s.starts_with("aws."))
        {
            assert_eq!(r["Properties"]["EventBusName"], "default", "{id}");
        }
        // The queue policy lets this rule's dead letters in (under the rule's own condition:
        // a conditional rule's ARN cannot be named when it is not deployed).
        let allowed = &t["Resources"]["EventsDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]
            ["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"];
        let arn = json!({"Fn::GetAtt": [id, "Arn"]});
        let admitted = list(allowed)
            .into_iter()
            .any(|a| match r["Condition"].as_str() {
                None => a == arn,
                Some(c) => a == json!({"Fn::If": [c, arn, {"Ref": "AWS::NoValue"}]}),
            });
        assert!(admitted, "{id} missing from the DLQ policy: {allowed}");
    }
    assert_eq!(
        rules,
        BTreeSet::from([
            "IngressPushRule",
            "ApprovalReferrerRule",
            "PromotionRequestedRule",
            "SyncScheduleRule"
        ])
    );
    for role in ["EventsStartExecutionRole", "EventsStartSyncRole"] {
        let role = &t["Resources"][role]["Properties"];
        assert_eq!(
            role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"],
            "events.amazonaws.com"
        );
    }
    let queue_policy = &t["Resources"]["EventsDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]
        ["Statement"][0];
    assert_eq!(queue_policy["Principal"]["Service"], "events.amazonaws.com");
    assert_eq!(queue_policy["Action"], "sqs:SendMessage");
}

// ------------------------------------------------------------------------------------------------
// IAM review
// ------------------------------------------------------------------------------------------------

/// Actions that have no resource scope and may use `Resource: "*"`.
const UNSCOPED_ACTIONS: [&str; 15] = [
    "ecr:GetAuthorizationToken",
    "inspector2:ListFindings",
    "inspector2:ListCoverage",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
];

const ECR_PUSH: [&str; 4] = [
    "ecr:PutImage",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
];
const ECR_PULL: [&str; 2] = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"];

/// One policy statement and where it came from.
struct Grant {
    /// The role it is attached to (identity policies), or the resource holding it.
    holder: String,
    /// Key and repository policies: `Resource: "*"` means the resource itself.
    resource_policy: bool,
    statement: Value,
}

impl Grant {
    fn allows(&self) -> bool {
        self.statement["Effect"] == "Allow"
    }
    fn actions(&self) -> Vec<String> {
        strings(&self.statement["Action"])
    }
    fn resources_text(&self) -> Vec<String> {
        list(&self.statement["Resource"])
            .iter()
            .map(|r| match r {
                Value::String(s) => s.clone(),
                Value::Object(m) if m.contains_key("Fn::Sub") => {
                    m["Fn::Sub"].as_str().unwrap_or_default().to_owned()
                }
                other => other.to_string(),
            })
            .collect()
    }
}

fn grants(t: &Value) -> Vec<Grant> {
    let mut out = Vec::new();
    let mut push = |holder: &str, resource_policy: bool, doc: &Value| {
        for s in list(&doc["Statement"]) {
            out.push(Grant {
                holder: holder.to_owned(),
                resource_policy,
                statement: s.clone(),
            });
        }
    };
    for (id, r) in resources(t) {
        let p = &r["Properties"];
        match r["Type"].as_str().unwrap_or_default() {
            "AWS::IAM::Role" => {
                for policy in list(&p["Policies"]) {
                    push(id, false, &policy["PolicyDocument"]);
                }
                assert!(
                    p["ManagedPolicyArns"].is_null(),
                    "{id}: managed policies cannot be reviewed here; write the statements"
                );
            }
            "AWS::IAM::RolePolicy" => {
                let role = p["RoleName"]["Ref"].as_str().expect("RoleName: Ref a role");
                push(role, false, &p["PolicyDocument"]);
            }
            "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" => {
                panic!("{id}: attach policies with AWS::IAM::RolePolicy or inline, one role each")
            }
            "AWS::KMS::Key" => push(id, true, &p["KeyPolicy"]),
            "AWS::ECR::Repository" => push(id, true, &p["RepositoryPolicyText"]),
            "AWS::ECR::RepositoryCreationTemplate" => {
                push(id, true, &creation_template_policy(t, id));
            }
            "AWS::SQS::QueuePolicy" => push(id, true, &p["PolicyDocument"]),
            "AWS::Serverless::Function" => assert!(
                p["Policies"].is_null(),
                "{id}: SAM Policies would widen the role; use the function's own role"
            ),
            _ => {}
        }
    }
    out
}

#[test]
fn iam_no_wildcard_actions_and_star_resources_only_where_no_scope_exists() {
    let t = template();
    let all = grants(&t);
    assert!(all.len() > 20, "too few statements found: {}", all.len());
    for g in &all {
        assert!(g.statement["NotAction"].is_null() && g.statement["NotResource"].is_null());
        let actions = g.actions();
        assert!(
            !actions.is_empty(),
            "{}: statement without Action",
            g.holder
        );
        for a in &actions {
            assert!(!a.contains('*'), "{}: wildcard action {a}", g.holder);
        }
        if g.allows() && !g.resource_policy {
            for r in g.resources_text() {
                if r == "*" {
                    for a in &actions {
                        assert!(
                            UNSCOPED_ACTIONS.contains(&a.as_str()),
                            "{}: {a} on Resource \"*\", but it has a resource scope",
                            g.holder
                        );
                    }
                }
            }
        }
    }
    // Trust policies: each role is assumable by exactly one service.
    for (id, r) in resources(&t).filter(|(_, r)| r["Type"] == "AWS::IAM::Role") {
        let trust = list(&r["Properties"]["AssumeRolePolicyDocument"]["Statement"]);
        assert_eq!(trust.len(), 1, "{id}");
        assert!(
            trust[0]["Principal"]["Service"].is_string(),
            "{id}: {}",
            trust[0]
        );
    }
}

#[test]
fn iam_each_function_has_its_own_role() {
    let t = template();
    let mut seen = BTreeSet::new();
    for (id, _, _) in FUNCTIONS.into_iter().chain([WEBHOOK, SYNC]) {
        let role = &t["Resources"][id]["Properties"]["Role"]["Fn::GetAtt"];
        let role = role[0]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: Role must be GetAtt <Role>.Arn"));
        assert_eq!(role, format!("{id}Role"), "{id}");
        assert_eq!(t["Resources"][role]["Type"], "AWS::IAM::Role");
        assert!(seen.insert(role), "{id} shares {role}");
    }
}

#[test]
fn iam_only_the_sign_role_can_sign() {
    let t = template();
    let all = grants(&t);
    let sign_role = json!({"Fn::GetAtt": ["SignFunctionRole", "Arn"]});
    let mut identity = 0;
    let mut key_policy = 0;
    for g in all.iter().filter(|g| g.allows()) {
        let actions = g.actions();
        if !actions.iter().any(|a| a == "kms:Sign") {
            continue;
        }
        if g.resource_policy {
            assert_eq!(g.holder, "SigningKey", "kms:Sign in {}", g.holder);
            assert_eq!(
                g.statement["Principal"]["AWS"], sign_role,
                "key policy grants kms:Sign to {}",
                g.statement["Principal"]
            );
            key_policy += 1;
        } else {
            assert_eq!(
                g.holder, "SignFunctionRole",
                "{} may call kms:Sign",
                g.holder
            );
            assert_eq!(
                g.statement["Resource"],
                json!({"Fn::GetAtt": ["SigningKey", "Arn"]}),
                "kms:Sign only on the signing key"
            );
            identity += 1;
        }
    }
    assert_eq!(
        (identity, key_policy),
        (1, 1),
        "kms:Sign granted exactly once on each side"
    );

    // KMS for the others: retag reads the public key; scan-gate and retag read the approvers'
    // public keys (GetPublicKey on ApproverKmsKeyArns alone); nobody else touches a key.
    let approver_keys = json!({"Fn::Split": [",", {"Ref": "ApproverKmsKeyArns"}]});
    for g in all.iter().filter(|g| g.allows() && !g.resource_policy) {
        let kms: Vec<String> = g
            .actions()
            .into_iter()
            .filter(|a| a.starts_with("kms:"))
            .collect();
        if g.statement["Resource"] == approver_keys {
            assert_eq!(kms, ["kms:GetPublicKey"], "{}: approver keys", g.holder);
            assert!(
                ["ScanGateFunctionRole", "RetagForEnvironmentFunctionRole"]
                    .contains(&g.holder.as_str()),
                "{} reads approver keys",
                g.holder
            );
            continue;
        }
        match g.holder.as_str() {
            _ if kms.is_empty() => {}
            "SignFunctionRole" => {}
            "RetagForEnvironmentFunctionRole" => assert!(
                kms.iter()
                    .all(|a| a == "kms:GetPublicKey" || a == "kms:DescribeKey"),
                "retag: {kms:?}"
            ),
            other => panic!("{other} has KMS permissions {kms:?}"),
        }
    }
    // The account principal administers the key but cannot sign (so IAM cannot delegate it).
    let key = &t["Resources"]["SigningKey"]["Properties"];
    assert_eq!(key["KeySpec"], "ECC_NIST_P256");
    assert_eq!(key["KeyUsage"], "SIGN_VERIFY");
    for s in list(&key["KeyPolicy"]["Statement"]) {
        let principal = s["Principal"]["AWS"].to_string();
        if principal.contains(":root") {
            assert!(
                !strings(&s["Action"]).iter().any(|a| a == "kms:Sign"),
                "root may sign"
            );
        }
    }
}

/// The sign role's credentials sign only from the sign function's code: an explicit Deny on the
/// role (it wins over the key policy's Allow) unless `lambda:SourceFunctionArn` is the sign
/// function. AWS evaluates that key in identity-based policies and SCPs, not in resource-based
/// policies, so the key policy must not carry it: there it would read as a restriction that no one
/// enforces.
#[test]
fn iam_the_sign_role_signs_only_from_the_sign_function() {
    let t = template();
    let all = grants(&t);
    let denies: Vec<&Grant> = all
        .iter()
        .filter(|g| g.statement["Effect"] == "Deny" && g.actions().iter().any(|a| a == "kms:Sign"))
        .collect();
    assert_eq!(denies.len(), 1, "one Deny of kms:Sign");
    let deny = denies[0];
    assert_eq!(deny.holder, "SignFunctionRole");
    assert!(!deny.resource_policy, "the Deny is on the role");
    assert_eq!(deny.actions(), ["kms:Sign"]);
    assert_eq!(
        deny.statement["Resource"],
        json!({"Fn::GetAtt": ["SigningKey", "Arn"]})
    );
    let condition = deny.statement["Condition"]
        .as_object()
        .expect("a Condition");
    assert_eq!(
        condition.keys().collect::<Vec<_>>(),
        ["ArnNotLike"],
        "ArnNotLike: true when the key is absent (credentials used outside Lambda)"
    );
    assert_eq!(
        condition["ArnNotLike"],
        json!({"lambda:SourceFunctionArn": [
            {"Fn::GetAtt": ["SignFunction", "Arn"]},
            {"Fn::Sub": "${SignFunction.Arn}:*"},
        ]})
    );
    // The guard names the function, so the function must not wait for it (a cycle).
    let waits = &t["Resources"]["SignFunction"]["DependsOn"];
    assert!(
        !waits.to_string().contains("SignFunctionSourceGuard"),
        "SignFunction DependsOn {waits}"
    );
    for g in all.iter().filter(|g| g.resource_policy) {
        assert!(
            !g.statement["Condition"]
                .to_string()
                .contains("lambda:SourceFunctionArn"),
            "{}: lambda:SourceFunctionArn is not evaluated in resource-based policies",
            g.holder
        );
    }
}

/// The ARN of every repository under a prefix parameter, as the roles write it.
fn prefix_arn(prefix_param: &str) -> String {
    format!(
        "arn:${{AWS::Partition}}:ecr:${{AWS::Region}}:${{AWS::AccountId}}:repository/${{{prefix_param}}}*"
    )
}

/// The three repository prefixes, ingress first.
const PREFIXES: [&str; 4] = [
    "IngressRepositoryPrefix",
    "QuarantineRepositoryPrefix",
    "TrustedRepositoryPrefix",
    "ApprovalsRepositoryPrefix",
];

/// Which roles may use any of `actions` on the repositories under a prefix parameter (the ARN
/// `repository/${Prefix}*`).
fn roles_with(all: &[Grant], actions: &[&str], prefix_param: &str) -> BTreeSet<String> {
    let arn = prefix_arn(prefix_param);
    all.iter()
        .filter(|g| g.allows() && !g.resource_policy)
        .filter(|g| g.actions().iter().any(|a| actions.contains(&a.as_str())))
        .filter(|g| g.resources_text().contains(&arn))
        .map(|g| g.holder.clone())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A creation template's repository policy: its `Fn::Sub` resolved with the parameter defaults
/// (role ARNs become [`getatt`] markers) and parsed.
fn creation_template_policy(t: &Value, id: &str) -> Value {
    let params = parameter_defaults(t);
    let text = resolve(
        &t["Resources"][id]["Properties"]["RepositoryPolicy"],
        &params,
    );
    let text = text
        .as_str()
        .unwrap_or_else(|| panic!("{id}: RepositoryPolicy is not a string (Fn::Sub of JSON)"));
    assert!(
        !text.contains("${"),
        "{id}: unresolved Fn::Sub variable in {text}"
    );
    assert!(
        text.len() <= 10240,
        "{id}: RepositoryPolicy over ECR's 10240 characters"
    );
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{id}: RepositoryPolicy JSON: {e}"))
}

/// What a repository policy must keep from everyone but the break-glass role (issue "the
/// perimeter"): a principal with `ecr:*` could otherwise remove the policy and push anything,
/// or delete an environment tag's image and have the pipeline re-create it on another digest.
const SELF_PROTECTED: [&str; 8] = [
    "ecr:SetRepositoryPolicy",
    "ecr:DeleteRepositoryPolicy",
    "ecr:PutImageTagMutability",
    "ecr:PutLifecyclePolicy",
    "ecr:DeleteLifecyclePolicy",
    "ecr:PutImageScanningConfiguration",
    "ecr:BatchDeleteImage",
    "ecr:DeleteRepository",
];

#[test]
fn iam_repository_access_is_limited_to_the_pipeline_roles() {
    let t = template();
    let all = grants(&t);
    let copy = "CopyToQuarantineFunctionRole";
    let gate = "ScanGateFunctionRole";
    let promote = "PromoteAndAnnotateFunctionRole";
    let sign = "SignFunctionRole";
    let retag = "RetagForEnvironmentFunctionRole";
    let sync = "SyncPlanFunctionRole";

    assert_eq!(
        roles_with(&all, &ECR_PUSH, "QuarantineRepositoryPrefix"),
        set(&[copy])
    );
    assert_eq!(
        roles_with(&all, &ECR_PUSH, "TrustedRepositoryPrefix"),
        set(&[promote, sign, retag])
    );
    assert_eq!(
        roles_with(&all, &ECR_PULL, "QuarantineRepositoryPrefix"),
        set(&[copy, gate, promote])
    );
    assert_eq!(
        roles_with(&all, &ECR_PUSH, "IngressRepositoryPrefix"),
        set(&[])
    );
    // Approvals: read by the two steps that verify them, written by no pipeline role.
    assert_eq!(
        roles_with(&all, &ECR_PULL, "ApprovalsRepositoryPrefix"),
        set(&[gate, retag])
    );
    assert_eq!(
        roles_with(&all, &ECR_PUSH, "ApprovalsRepositoryPrefix"),
        set(&[])
    );
    // Ingress repositories are only read: by copy (the images) and sync-plan (tags and
    // manifests: a sync may list an ingress repository).
    let ingress: Vec<&Grant> = all
        .iter()
        .filter(|g| {
            g.resources_text()
                .iter()
                .any(|r| r.contains("${IngressRepositoryPrefix}"))
        })
        .collect();
    assert_eq!(
        ingress
            .iter()
            .map(|g| g.holder.clone())
            .collect::<BTreeSet<_>>(),
        set(&[copy, sync])
    );
    assert_eq!(ingress.len(), 2, "one statement each");
    for g in &ingress {
        assert!(g.allows(), "{}", g.holder);
        assert!(
            g.actions()
                .iter()
                .all(|a| !ECR_PUSH.contains(&a.as_str()) && a != "ecr:CreateRepository"),
            "{} may write to ingress: {:?}",
            g.holder,
            g.actions()
        );
    }
    // sync-plan reads manifests and tags (a HEAD is BatchGetImage), never blobs, and never a
    // quarantine or approvals repository.
    assert_eq!(
        roles_with(
            &all,
            &["ecr:GetDownloadUrlForLayer"],
            "IngressRepositoryPrefix"
        ),
        set(&[copy])
    );
    for prefix in PREFIXES {
        let readers = roles_with(&all, &ECR_PULL, prefix);
        let expected = matches!(
            prefix,
            "IngressRepositoryPrefix" | "TrustedRepositoryPrefix"
        );
        assert_eq!(
            readers.contains(sync),
            expected,
            "sync-plan and {prefix}: {readers:?}"
        );
    }
    // Any ECR grant names exactly the repositories under one of the three prefixes (or is the
    // token): one repository per application, `repository/${Prefix}*`.
    let allowed: Vec<String> = PREFIXES.iter().map(|p| prefix_arn(p)).collect();
    for g in all.iter().filter(|g| g.allows() && !g.resource_policy) {
        if g.actions()
            .iter()
            .any(|a| a.starts_with("ecr:") && a != "ecr:GetAuthorizationToken")
        {
            let resources = g.resources_text();
            assert!(
                !resources.is_empty(),
                "{}: ECR access without Resource",
                g.holder
            );
            for r in resources {
                assert!(
                    allowed.contains(&r),
                    "{}: ECR access to {r}, not to repository/<prefix>* of one of {PREFIXES:?}",
                    g.holder
                );
            }
        }
    }

    // Repository policies (the creation templates', applied to every repository ECR creates
    // under the prefix) deny everyone else, so an over-broad IAM policy elsewhere in the account
    // cannot reach quarantine or write to trusted.
    let deny = |id: &str, sid: &str| -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
        let policy = creation_template_policy(&t, id);
        assert_eq!(policy["Version"], "2012-10-17", "{id}");
        let statements = list(&policy["Statement"]);
        assert_eq!(
            statements.len(),
            if id == "ApprovalsRepositoryTemplate" {
                3
            } else {
                2
            },
            "{id}: the access rules and the self-protection"
        );
        let s = statements
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("{id}: no statement {sid}"));
        assert_eq!(s["Effect"], "Deny", "{id}");
        assert_eq!(s["Principal"], "*", "{id}");
        assert!(
            s["NotAction"].is_null() && s["NotPrincipal"].is_null() && s["Resource"].is_null(),
            "{id}: {s}"
        );
        let conditions = s["Condition"].as_object().expect("Condition");
        assert_eq!(conditions.len(), 1, "{id}: only ArnNotEquals: {s}");
        let by_arn = s["Condition"]["ArnNotEquals"]
            .as_object()
            .expect("ArnNotEquals");
        assert_eq!(by_arn.len(), 1, "{id}: only aws:PrincipalArn: {s}");
        let (mut roles, mut others) = (BTreeSet::new(), BTreeSet::new());
        for arn in strings(&by_arn["aws:PrincipalArn"]) {
            match getatt_target(&arn, "Arn") {
                Some(role) => {
                    assert_eq!(
                        t["Resources"][role]["Type"], "AWS::IAM::Role",
                        "{id}: {role}"
                    );
                    roles.insert(role.to_owned());
                }
                None => {
                    others.insert(arn);
                }
            }
        }
        (strings(&s["Action"]).into_iter().collect(), roles, others)
    };
    let (actions, exempt, others) = deny(
        "QuarantineRepositoryTemplate",
        "OnlyThePipelineReadsOrWritesQuarantine",
    );
    for a in ECR_PULL.iter().chain(&ECR_PUSH) {
        assert!(actions.contains(*a), "quarantine policy does not deny {a}");
    }
    assert_eq!(exempt, set(&[copy, gate, promote]));
    // ... and Inspector's service-linked role, which reads the images it scans.
    assert_eq!(
        others,
        set(&[&format!(
            "arn:aws:iam::{ACCOUNT}:role/aws-service-role/inspector2.amazonaws.com/AWSServiceRoleForAmazonInspector2"
        )])
    );
    let (actions, exempt, others) =
        deny("TrustedRepositoryTemplate", "OnlyThePipelineWritesTrusted");
    assert_eq!(actions, ECR_PUSH.iter().map(|s| (*s).to_owned()).collect());
    assert_eq!(exempt, set(&[promote, sign, retag]));
    assert_eq!(others, set(&[]));
    // Approvals: only the approver role pushes; only the verifying steps (and approvers) read.
    let approver = format!("arn:aws:iam::{ACCOUNT}:role/ecr-promotion-approver");
    let (actions, exempt, others) =
        deny("ApprovalsRepositoryTemplate", "OnlyApproversWriteApprovals");
    assert_eq!(actions, ECR_PUSH.iter().map(|s| (*s).to_owned()).collect());
    assert_eq!(exempt, set(&[]));
    assert_eq!(others, set(&[&approver]));
    let (actions, exempt, others) = deny(
        "ApprovalsRepositoryTemplate",
        "OnlyThePipelineAndApproversReadApprovals",
    );
    for a in ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"] {
        assert!(actions.contains(a), "approvals policy does not deny {a}");
    }
    assert_eq!(exempt, set(&[gate, retag]));
    assert_eq!(others, set(&[&approver]));
    // The policies protect themselves: replacing or deleting them, changing tag mutability,
    // the lifecycle or scanning, deleting images or the repository are denied to everyone but
    // the break-glass role; no pipeline role is exempt (none needs them).
    for id in [
        "QuarantineRepositoryTemplate",
        "TrustedRepositoryTemplate",
        "ApprovalsRepositoryTemplate",
    ] {
        let (actions, exempt, others) = deny(id, "TheRepositoryProtectsItself");
        for a in SELF_PROTECTED {
            assert!(actions.contains(a), "{id}: {a} is not denied");
        }
        assert_eq!(exempt, set(&[]), "{id}");
        assert_eq!(
            others,
            set(&[&format!(
                "arn:aws:iam::{ACCOUNT}:role/ecr-promotion-break-glass"
            )]),
            "{id}: only the break-glass role (parameter BreakGlassRoleName)"
        );
    }
    // Every repository policy the stack sets is one of these two.
    let holders: BTreeSet<&str> = all
        .iter()
        .filter(|g| g.resource_policy)
        .filter(|g| {
            t["Resources"][&g.holder]["Type"]
                .as_str()
                .is_some_and(|k| k.starts_with("AWS::ECR::"))
        })
        .map(|g| g.holder.as_str())
        .collect();
    assert_eq!(
        holders,
        [
            "ApprovalsRepositoryTemplate",
            "QuarantineRepositoryTemplate",
            "TrustedRepositoryTemplate"
        ]
        .into_iter()
        .collect()
    );
}

/// Repositories are created on push (one per application): only copy may create quarantine
/// repositories and only promote trusted ones; nobody creates ingress repositories or any other.
#[test]
fn iam_only_copy_creates_quarantine_and_only_promote_creates_trusted_repositories() {
    let t = template();
    let all = grants(&t);
    let create = ["ecr:CreateRepository"];
    assert_eq!(
        roles_with(&all, &create, "QuarantineRepositoryPrefix"),
        set(&["CopyToQuarantineFunctionRole"])
    );
    assert_eq!(
        roles_with(&all, &create, "TrustedRepositoryPrefix"),
        set(&["PromoteAndAnnotateFunctionRole"])
    );
    assert_eq!(
        roles_with(&all, &create, "IngressRepositoryPrefix"),
        set(&[])
    );
    // Every grant of ecr:CreateRepository: one statement of its own, on one prefix.
    let mut grants_of_create = Vec::new();
    for g in all.iter().filter(|g| g.allows()) {
        let actions = g.actions();
        if !actions.iter().any(|a| a == "ecr:CreateRepository") {
            continue;
        }
        assert!(
            !g.resource_policy,
            "{}: a resource policy grants CreateRepository",
            g.holder
        );
        assert_eq!(
            actions,
            ["ecr:CreateRepository"],
            "{}: a statement of its own",
            g.holder
        );
        let resources = g.resources_text();
        assert_eq!(resources.len(), 1, "{}: {resources:?}", g.holder);
        grants_of_create.push((g.holder.clone(), resources[0].clone()));
    }
    grants_of_create.sort();
    assert_eq!(
        grants_of_create,
        [
            (
                "CopyToQuarantineFunctionRole".to_owned(),
                prefix_arn("QuarantineRepositoryPrefix")
            ),
            (
                "PromoteAndAnnotateFunctionRole".to_owned(),
                prefix_arn("TrustedRepositoryPrefix")
            ),
        ]
    );
    // Nothing else administers repositories or creation templates at run time.
    for g in all.iter().filter(|g| g.allows() && !g.resource_policy) {
        for a in g.actions() {
            assert!(
                !matches!(
                    a.as_str(),
                    "ecr:DeleteRepository"
                        | "ecr:SetRepositoryPolicy"
                        | "ecr:DeleteRepositoryPolicy"
                        | "ecr:PutLifecyclePolicy"
                        | "ecr:DeleteLifecyclePolicy"
                        | "ecr:PutImageTagMutability"
                        | "ecr:BatchDeleteImage"
                        | "ecr:CreateRepositoryCreationTemplate"
                        | "ecr:UpdateRepositoryCreationTemplate"
                        | "ecr:DeleteRepositoryCreationTemplate"
                        | "ecr:PutRegistryScanningConfiguration"
                        | "iam:PassRole"
                ),
                "{} may {a}",
                g.holder
            );
        }
    }
}

#[test]
fn iam_state_machine_role_invokes_only_the_five_functions() {
    let t = template();
    let all = grants(&t);
    let sm: Vec<&Grant> = all
        .iter()
        .filter(|g| g.holder == "StateMachineRole")
        .collect();
    let invoke: Vec<&&Grant> = sm
        .iter()
        .filter(|g| g.actions().iter().any(|a| a == "lambda:InvokeFunction"))
        .collect();
    assert_eq!(invoke.len(), 1);
    let targets: BTreeSet<String> = list(&invoke[0].statement["Resource"])
        .iter()
        .map(|r| {
            r["Fn::GetAtt"][0]
                .as_str()
                .expect("GetAtt function")
                .to_owned()
        })
        .collect();
    assert_eq!(targets, FUNCTIONS.iter().map(|f| f.0.to_owned()).collect());
    assert!(
        sm.iter().any(|g| g.actions() == ["events:PutEvents"]
            && g.statement["Resource"] == json!({"Fn::GetAtt": ["PromotionEventBus", "Arn"]})),
        "the state machine emits its events on the pipeline's own bus only"
    );
    // The promotion state machine starts nothing and touches no other execution.
    assert!(
        sm.iter()
            .flat_map(|g| g.actions())
            .all(|a| !a.starts_with("states:")),
        "StateMachineRole may use Step Functions actions"
    );
    // Nothing else may invoke or start anything: the sync state machine invokes sync-plan
    // alone, and it and the rules start only what `iam_the_sync_state_machine_...` and
    // `every_rule_targets_...` allow.
    let promotion = json!({"Ref": "PromotionStateMachine"});
    let sync = json!({"Ref": "SyncStateMachine"});
    for g in &all {
        for a in g.actions() {
            if a == "lambda:InvokeFunction" {
                match g.holder.as_str() {
                    "StateMachineRole" => {}
                    "SyncStateMachineRole" => assert_eq!(
                        g.statement["Resource"],
                        json!({"Fn::GetAtt": ["SyncPlanFunction", "Arn"]}),
                        "the sync state machine invokes sync-plan only"
                    ),
                    other => panic!("{other} may invoke functions"),
                }
            }
            if a == "states:StartExecution" {
                match g.holder.as_str() {
                    "EventsStartExecutionRole" => {
                        assert_eq!(g.statement["Resource"], promotion);
                    }
                    "EventsStartSyncRole" => assert_eq!(g.statement["Resource"], sync),
                    "SyncStateMachineRole" => {}
                    other => panic!("{other} may start executions"),
                }
            }
        }
    }
    for id in ["PromotionStateMachine", "SyncStateMachine"] {
        let props = &t["Resources"][id]["Properties"];
        assert_eq!(props["Type"], "STANDARD", "{id}");
        assert_eq!(props["Tracing"]["Enabled"], true, "{id}");
        assert_eq!(props["Logging"]["IncludeExecutionData"], false, "{id}");
    }
}

/// The sync state machine's role: it invokes sync-plan and nothing else, starts the promotion
/// state machine and (its Distributed Map's child executions) itself and nothing else, and
/// follows only those executions; it is named, so its ARN is built from the name and not a
/// `GetAtt` of the state machine (which depends on the role). And sync-plan can write nothing.
#[test]
fn iam_the_sync_state_machine_invokes_only_sync_plan_and_starts_only_promotions() {
    let t = template();
    let all = grants(&t);
    let arn = |rest: &str| json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:{rest}")});
    let name = "${AWS::StackName}-sync";
    let props = &t["Resources"]["SyncStateMachine"]["Properties"];
    assert_eq!(props["Name"], json!({"Fn::Sub": name}));
    assert_eq!(
        props["Role"],
        json!({"Fn::GetAtt": ["SyncStateMachineRole", "Arn"]})
    );
    assert_eq!(
        props["DefinitionSubstitutions"],
        json!({
            "SyncPlanFunctionArn": {"Fn::GetAtt": ["SyncPlanFunction", "Arn"]},
            "PromotionStateMachineArn": {"Ref": "PromotionStateMachine"},
        })
    );
    // Logged like the promotion state machine, to a log group of its own.
    let log_group = &props["Logging"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"];
    assert_eq!(
        log_group,
        &json!({"Fn::GetAtt": ["SyncStateMachineLogGroup", "Arn"]})
    );
    assert_eq!(
        props["Logging"]["Level"],
        t["Resources"]["PromotionStateMachine"]["Properties"]["Logging"]["Level"]
    );
    assert_eq!(
        t["Resources"]["SyncStateMachineLogGroup"]["Properties"]["LogGroupName"],
        json!({"Fn::Sub": "/aws/vendedlogs/states/${AWS::StackName}-sync"})
    );
    let role = &t["Resources"]["SyncStateMachineRole"]["Properties"];
    assert_eq!(
        role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"],
        "states.amazonaws.com"
    );

    // Every grant of the role, by action: exactly these resources.
    let own = "states:${AWS::Region}:${AWS::AccountId}";
    let promotion_executions = arn(&format!(
        "{own}:execution:${{PromotionStateMachine.Name}}:*"
    ));
    let mut want: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut allow = |action: &'static str, resources: &[Value]| {
        want.entry(action)
            .or_default()
            .extend(resources.iter().map(Value::to_string));
    };
    allow(
        "lambda:InvokeFunction",
        &[json!({"Fn::GetAtt": ["SyncPlanFunction", "Arn"]})],
    );
    // states:startExecution.sync:2 on the promotion state machine ...
    allow(
        "states:StartExecution",
        &[
            json!({"Ref": "PromotionStateMachine"}),
            arn(&format!("{own}:stateMachine:{name}")),
        ],
    );
    for action in ["states:DescribeExecution", "states:StopExecution"] {
        allow(
            action,
            &[
                promotion_executions.clone(),
                // ... and the Distributed Map's child executions (<name>/<label>:<id>) and the
                // sync's own.
                arn(&format!("{own}:execution:{name}/*")),
                arn(&format!("{own}:execution:{name}:*")),
            ],
        );
    }
    // The managed rule through which a .sync integration learns that an execution ended.
    for action in ["events:PutTargets", "events:PutRule", "events:DescribeRule"] {
        allow(
            action,
            &[arn(
                "events:${AWS::Region}:${AWS::AccountId}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule",
            )],
        );
    }
    for action in [
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
    ] {
        allow(action, &[json!("*")]);
    }
    let mut got: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let actions: Vec<(String, Vec<Value>)> = all
        .iter()
        .filter(|g| g.holder == "SyncStateMachineRole")
        .map(|g| {
            assert!(
                g.allows() && g.statement["Condition"].is_null(),
                "{}",
                g.statement
            );
            (g.actions().join(" "), list(&g.statement["Resource"]))
        })
        .collect();
    for (joined, resources) in &actions {
        for action in joined.split(' ') {
            let entry: &str = want
                .keys()
                .copied()
                .find(|k| *k == action)
                .unwrap_or_else(|| panic!("SyncStateMachineRole may {action}"));
            got.entry(entry)
                .or_default()
                .extend(resources.iter().map(Value::to_string));
        }
    }
    assert_eq!(got, want, "SyncStateMachineRole's grants");

    // What the definition does is what the role allows: its tasks invoke the substituted
    // sync-plan ARN or start the substituted promotion state machine (.sync: the managed rule
    // and Describe/StopExecution above), and its Map is distributed (the self-start above).
    let definition: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("statemachine/sync.asl.json")).expect("sync.asl.json"),
    )
    .expect("sync.asl.json: JSON");
    let mut tasks = Vec::new();
    let mut distributed = 0;
    collect_states(&definition, &mut tasks, &mut distributed);
    assert!(distributed >= 1, "sync.asl.json: no Distributed Map");
    assert!(!tasks.is_empty());
    for task in &tasks {
        match task["Resource"].as_str().unwrap_or_default() {
            "${SyncPlanFunctionArn}" => {}
            "arn:aws:states:::states:startExecution.sync:2"
            | "arn:aws:states:::states:startExecution.sync"
            | "arn:aws:states:::states:startExecution" => assert_eq!(
                task["Parameters"]["StateMachineArn"], "${PromotionStateMachineArn}",
                "the sync starts the promotion state machine only: {task}"
            ),
            other => panic!("sync.asl.json: a task the role does not allow: {other}"),
        }
    }

    // sync-plan reads; it can push nothing, create no repository and use no key.
    let sync_plan: Vec<&Grant> = all
        .iter()
        .filter(|g| g.holder == "SyncPlanFunctionRole")
        .collect();
    assert!(!sync_plan.is_empty());
    for g in &sync_plan {
        for a in g.actions() {
            assert!(
                !ECR_PUSH.contains(&a.as_str())
                    && !a.starts_with("kms:")
                    && !a.starts_with("states:")
                    && !a.starts_with("events:")
                    && !a.starts_with("lambda:")
                    && a != "ecr:CreateRepository"
                    && a != "ecr:GetDownloadUrlForLayer",
                "sync-plan may {a}"
            );
        }
    }
    // ... and reads the sources copy reads, under the same conditions.
    for (copy_policy, sync_policy) in [
        ("CopyReadsSourceCredentials", "SyncReadsSourceCredentials"),
        ("CopyAssumesSourceEcrRoles", "SyncAssumesSourceEcrRoles"),
    ] {
        let (c, s) = (&t["Resources"][copy_policy], &t["Resources"][sync_policy]);
        assert_eq!(s["Type"], "AWS::IAM::RolePolicy", "{sync_policy}");
        assert_eq!(s["Condition"], c["Condition"], "{sync_policy}");
        assert_eq!(
            s["Properties"]["RoleName"],
            json!({"Ref": "SyncPlanFunctionRole"})
        );
        assert_eq!(
            s["Properties"]["PolicyDocument"], c["Properties"]["PolicyDocument"],
            "{sync_policy} grants what {copy_policy} grants"
        );
    }
    // Only copy and sync-plan read source credentials or assume the source roles.
    for g in all.iter().filter(|g| g.allows()) {
        if g.actions()
            .iter()
            .any(|a| a == "sts:AssumeRole" || a == "secretsmanager:GetSecretValue")
            && g.statement["Resource"] != json!({"Ref": "GitHubWebhookSecretArn"})
            && !g.resource_policy
        {
            assert!(
                ["CopyToQuarantineFunctionRole", "SyncPlanFunctionRole"]
                    .contains(&g.holder.as_str()),
                "{} reads source credentials or assumes source roles",
                g.holder
            );
        }
    }
}

/// Every Task state (with its Parameters) and the number of distributed Maps, at any depth.
fn collect_states(definition: &Value, tasks: &mut Vec<Value>, distributed: &mut usize) {
    for (_, state) in definition["States"].as_object().into_iter().flatten() {
        match state["Type"].as_str() {
            Some("Task") => tasks.push(state.clone()),
            Some("Map") => {
                let processor = if state["ItemProcessor"].is_null() {
                    &state["Iterator"]
                } else {
                    &state["ItemProcessor"]
                };
                if processor["ProcessorConfig"]["Mode"] == "DISTRIBUTED" {
                    *distributed += 1;
                }
                collect_states(processor, tasks, distributed);
            }
            Some("Parallel") => {
                for branch in list(&state["Branches"]) {
                    collect_states(&branch, tasks, distributed);
                }
            }
            _ => {}
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Repositories: created on push from two repository creation templates
// ------------------------------------------------------------------------------------------------

/// The stack creates no repository: ECR creates `<prefix><application>` on the pipeline's first
/// push with the settings of the quarantine and trusted creation templates, which carry what the
/// two shared repositories carried (encryption, tag mutability, lifecycle; the repository
/// policies are reviewed in `iam_repository_access_is_limited_to_the_pipeline_roles`).
#[test]
fn repositories_are_created_on_push_from_the_two_creation_templates() {
    let t = template();
    let params = parameter_defaults(&t);
    let of_type = |kind: &str| -> BTreeSet<String> {
        resources(&t)
            .filter(|(_, r)| r["Type"] == kind)
            .map(|(id, _)| id.clone())
            .collect()
    };
    assert_eq!(
        of_type("AWS::ECR::Repository"),
        set(&[]),
        "repositories are per application, created on push; the stack creates none"
    );
    assert_eq!(
        of_type("AWS::ECR::RepositoryCreationTemplate"),
        set(&[
            "ApprovalsRepositoryTemplate",
            "QuarantineRepositoryTemplate",
            "TrustedRepositoryTemplate"
        ])
    );
    for (id, prefix) in [
        ("QuarantineRepositoryTemplate", "QuarantineRepositoryPrefix"),
        ("TrustedRepositoryTemplate", "TrustedRepositoryPrefix"),
        ("ApprovalsRepositoryTemplate", "ApprovalsRepositoryPrefix"),
    ] {
        let p = &t["Resources"][id]["Properties"];
        assert_eq!(p["Prefix"], json!({"Ref": prefix}), "{id}");
        assert_eq!(p["AppliedFor"], json!(["CREATE_ON_PUSH"]), "{id}");
        // Identical encryption is what lets ECR mount blobs across repositories (copy →
        // quarantine → trusted); a KMS key would also need a CustomRoleArn.
        assert_eq!(
            p["EncryptionConfiguration"],
            json!({"EncryptionType": "AES256"}),
            "{id}"
        );
        // ECR's service-linked role creates the repository; a custom role is needed only for KMS
        // keys or resource tags, which these templates do not use.
        assert!(
            p["CustomRoleArn"].is_null() && p["ResourceTags"].is_null(),
            "{id}: a CustomRoleArn or ResourceTags (which need one) widen what ECR may do"
        );
        let lifecycle = resolve(&p["LifecyclePolicy"], &params);
        let lifecycle = lifecycle.as_str().expect("LifecyclePolicy text");
        assert!(
            (100..=30720).contains(&lifecycle.len()),
            "{id}: LifecyclePolicy length {} outside ECR's 100-30720",
            lifecycle.len()
        );
        let lifecycle: Value = serde_json::from_str(lifecycle).expect("lifecycle JSON");
        assert!(
            !list(&lifecycle["rules"]).is_empty(),
            "{id}: no lifecycle rules"
        );
        // The repository policy parses (it is reviewed in the IAM tests).
        creation_template_policy(&t, id);
    }

    let q = &t["Resources"]["QuarantineRepositoryTemplate"]["Properties"];
    assert_eq!(q["ImageTagMutability"], "MUTABLE");
    assert!(q["ImageTagMutabilityExclusionFilters"].is_null());
    let lifecycle: Value = serde_json::from_str(
        resolve(&q["LifecyclePolicy"], &params)
            .as_str()
            .expect("text"),
    )
    .expect("quarantine lifecycle JSON");
    let rules = list(&lifecycle["rules"]);
    assert_eq!(rules.len(), 1, "{lifecycle}");
    assert_eq!(
        rules[0]["selection"],
        json!({
            "tagStatus": "any",
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": params["QuarantineRetentionDays"].parse::<u64>().expect("days"),
        }),
        "everything in quarantine expires QuarantineRetentionDays after push"
    );
    assert_eq!(rules[0]["action"], json!({"type": "expire"}));

    let tr = &t["Resources"]["TrustedRepositoryTemplate"]["Properties"];
    assert_eq!(tr["ImageTagMutability"], "IMMUTABLE_WITH_EXCLUSION");
    assert_eq!(
        tr["ImageTagMutabilityExclusionFilters"],
        json!([{
            "ImageTagMutabilityExclusionFilterType": "WILDCARD",
            "ImageTagMutabilityExclusionFilterValue": "sha256-*",
        }]),
        "environment tags immutable, the fallback index and .sig tags (sha256-*) rewritable"
    );
    assert_eq!(
        tr["LifecyclePolicy"],
        json!({"Ref": "TrustedLifecyclePolicy"})
    );

    // No promotion can start before the templates exist: everything that starts one targets the
    // state machine, which waits for both.
    let depends: BTreeSet<String> = strings(&t["Resources"]["PromotionStateMachine"]["DependsOn"])
        .into_iter()
        .collect();
    assert!(
        depends.contains("QuarantineRepositoryTemplate")
            && depends.contains("TrustedRepositoryTemplate"),
        "PromotionStateMachine must DependsOn both creation templates: {depends:?}"
    );

    // Inspector scans every repository under the two prefixes (when configured).
    let scanning = resolve(
        &t["Resources"]["RegistryScanningConfiguration"]["Properties"],
        &params,
    );
    let filters: Vec<Value> = list(&scanning["Rules"])
        .iter()
        .flat_map(|r| list(&r["RepositoryFilters"]))
        .collect();
    assert_eq!(
        filters,
        [
            json!({"FilterType": "WILDCARD", "Filter": "quarantine/*"}),
            json!({"FilterType": "WILDCARD", "Filter": "trusted/*"}),
        ]
    );

    // The outputs name the registry and prefixes; <application> follows.
    let outputs = &t["Outputs"];
    let host = format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com");
    for (name, want) in [
        (
            "QuarantineRepositoryPrefixUri",
            format!("{host}/quarantine/"),
        ),
        ("TrustedRepositoryPrefixUri", format!("{host}/trusted/")),
    ] {
        assert_eq!(resolve(&outputs[name]["Value"], &params), want, "{name}");
        assert!(
            outputs[name]["Description"]
                .as_str()
                .is_some_and(|d| d.contains("<application>")),
            "{name}: say that <application> follows"
        );
    }
    for gone in ["QuarantineRepositoryUri", "TrustedRepositoryUri"] {
        assert!(
            outputs[gone].is_null(),
            "{gone}: there is no single repository any more"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Parameters
// ------------------------------------------------------------------------------------------------

#[test]
fn parameters_are_typed_constrained_and_their_defaults_pass() {
    let t = template();
    let params = t["Parameters"].as_object().expect("Parameters");
    assert!(params.len() >= 10);
    for (name, p) in params {
        let kind = p["Type"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no Type"));
        assert!(
            p["ConstraintDescription"]
                .as_str()
                .is_some_and(|d| d.len() > 10),
            "{name}: no ConstraintDescription, so a wrong value fails without explanation"
        );
        match kind {
            "String" => assert!(
                p["AllowedValues"].is_array() || p["AllowedPattern"].is_string(),
                "{name}: a String needs AllowedValues or AllowedPattern"
            ),
            "Number" => assert!(
                p["AllowedValues"].is_array()
                    || (p["MinValue"].is_number() && p["MaxValue"].is_number()),
                "{name}: a Number needs AllowedValues or MinValue and MaxValue"
            ),
            other => panic!("{name}: unexpected Type {other}"),
        }
        let default = scalar(&p["Default"]).unwrap_or_else(|| panic!("{name}: no Default"));
        if let Err(why) = check_parameter(p, &default) {
            panic!("{name}: the default {default:?} fails its own constraint: {why}");
        }
    }

    // The three repository prefixes have one shape: path components ([a-z0-9]+([._-][a-z0-9]+)*)
    // joined by "/", ending in "/" (what the functions accept, functions/README.md).
    for name in PREFIXES {
        for key in ["Type", "AllowedPattern", "MinLength", "MaxLength"] {
            assert_eq!(
                params[name][key], params[PREFIXES[0]][key],
                "{name}: {key} differs from {}'s",
                PREFIXES[0]
            );
        }
        assert!(
            p_description(&params[name]).contains("prefix of another"),
            "{name}: say that no prefix may be a prefix of another (the functions refuse to start)"
        );
        let too_long = "a/".repeat(101);
        let bad_prefixes = [
            "",
            "/",
            "incoming",         // no trailing slash
            "trusted/app",      // no trailing slash
            "Incoming/",        // uppercase
            "trusted/App/",     // uppercase
            "/trusted/",        // leading slash
            "trusted//images/", // empty component
            "trusted/../x/",    // ..
            "a..b/",            // ..
            "./",               // .
            "-trusted/",        // separator first
            "trusted-/",        // separator last
            "trusted /",        // space
            "trusted/*",        // wildcard
            "i",
            too_long.as_str(),
        ];
        for value in bad_prefixes {
            assert!(
                check_parameter(&params[name], value).is_err(),
                "{name} accepts {value:?}"
            );
        }
        for value in [
            "incoming/",
            "ci/incoming/",
            "prod/trusted.images/",
            "q_1/",
            "a-b/c.d_e/",
            "a/",
        ] {
            if let Err(why) = check_parameter(&params[name], value) {
                panic!("{name} refuses {value:?}: {why}");
            }
        }
    }

    // Wrong values are refused.
    let bad = [
        ("ApprovalArtifactType", "application/json; charset=utf-8"),
        ("ApprovalArtifactType", "approval"),
        (
            "PromotionRequesters",
            "arn:aws:iam::123456789012:user/alice",
        ),
        (
            "PromotionRequesters",
            "arn:aws:iam::123456789012:role/a, arn:aws:iam::123456789012:role/b",
        ),
        ("PromotionRequesters", "*"),
        ("GatePolicy", "block_severities: [CRITICAL]"),
        ("Environments", "[1,2]"),
        ("Annotations", "a=b"),
        ("TrustedLifecyclePolicy", "{}"),
        ("SignMode", "all"),
        ("ScanPollSeconds", "1"),
        ("ScanMaxWaitSeconds", "100000"),
        ("LogRetentionDays", "10"),
        ("EnablePromotionRequestedRule", "yes"),
    ];
    for (name, value) in bad {
        assert!(
            check_parameter(&params[name], value).is_err(),
            "{name} accepts {value:?}"
        );
    }
    let good = [
        (
            "ApprovalArtifactType",
            "application/vnd.example.release-approval+json",
        ),
        ("Environments", ""),
        ("ScanPollSeconds", "300"),
    ];
    for (name, value) in good {
        if let Err(why) = check_parameter(&params[name], value) {
            panic!("{name} refuses {value:?}: {why}");
        }
    }

    // No default prefix is a prefix of another (the functions would refuse to start): the
    // ingress prefix must not capture the pipeline's own repositories, or every promotion would
    // start another, nor quarantine look like trusted.
    let defaults = parameter_defaults(&t);
    assert_eq!(
        PREFIXES.map(|p| defaults[p].as_str()),
        ["incoming/", "quarantine/", "trusted/", "approvals/"]
    );
    for a in PREFIXES {
        for b in PREFIXES {
            assert!(
                a == b || !defaults[b].starts_with(&defaults[a]),
                "the default {a} {:?} is a prefix of the default {b} {:?}",
                defaults[a],
                defaults[b]
            );
        }
    }
    // The lifecycle default is a policy ECR accepts the shape of.
    let lifecycle: Value =
        serde_json::from_str(&defaults["TrustedLifecyclePolicy"]).expect("lifecycle JSON");
    let priorities: Vec<u64> = list(&lifecycle["rules"])
        .iter()
        .map(|r| r["rulePriority"].as_u64().expect("rulePriority"))
        .collect();
    assert_eq!(priorities, [1, 2, 3, 4, 5]);
}

/// The scheduled sync: a rule (and its role) only when both `SyncSchedule` and `SyncRequest` are
/// set, a deploy-time refusal of a schedule without a request, and parameters that refuse what
/// EventBridge or the sync would refuse later.
#[test]
fn the_sync_schedule_exists_only_with_a_schedule_and_a_request() {
    let t = template();
    let params = &t["Parameters"];
    let defaults = parameter_defaults(&t);
    let with = |schedule: &str, request: &str| {
        let mut p = defaults.clone();
        p.insert("SyncSchedule".into(), schedule.into());
        p.insert("SyncRequest".into(), request.into());
        named_condition(&t, &p, "HasSyncSchedule")
    };
    let request = r#"{"repository":"ghcr.io/org/app","semver":">=1.0"}"#;
    assert!(!with("", ""), "no schedule by default");
    assert!(!with("rate(1 day)", ""));
    assert!(!with("", request));
    assert!(with("rate(1 day)", request));
    for id in ["SyncScheduleRule", "EventsStartSyncRole"] {
        assert_eq!(t["Resources"][id]["Condition"], "HasSyncSchedule", "{id}");
    }
    // Every condition evaluates under the defaults (what the routing test relies on).
    for name in t["Conditions"].as_object().expect("Conditions").keys() {
        named_condition(&t, &defaults, name);
    }

    // A schedule without a request is refused at deploy time rather than deploying nothing.
    let rule = &t["Rules"]["SyncScheduleNeedsARequest"];
    assert_eq!(
        rule["RuleCondition"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "SyncSchedule"}, ""]}]})
    );
    let assertions = list(&rule["Assertions"]);
    assert_eq!(assertions.len(), 1);
    assert_eq!(
        assertions[0]["Assert"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "SyncRequest"}, ""]}]})
    );

    for (name, value) in [
        ("SyncSchedule", ""),
        ("SyncSchedule", "rate(1 day)"),
        ("SyncSchedule", "rate(30 minutes)"),
        ("SyncSchedule", "cron(0 3 * * ? *)"),
        ("SyncRequest", ""),
        ("SyncRequest", request),
        (
            "SyncRequest",
            r#"{"repository":"ghcr.io/org/app","newest":5}"#,
        ),
        (
            "SyncRequest",
            r#"{ "repository": "ghcr.io/org/app", "tags": "v?[0-9.]+", "includeLatest": false }"#,
        ),
        ("SyncMaxConcurrency", "1"),
        ("SyncMaxConcurrency", "1000"),
        ("SyncToleratedFailurePercentage", "0"),
        ("SyncToleratedFailurePercentage", "100"),
        ("SyncMaxPromotions", "1"),
    ] {
        if let Err(why) = check_parameter(&params[name], value) {
            panic!("{name} refuses {value:?}: {why}");
        }
    }
    for (name, value) in [
        ("SyncSchedule", "daily"),
        ("SyncSchedule", "rate(0 days)"),
        ("SyncSchedule", "rate(1 week)"),
        ("SyncSchedule", "rate(1day)"),
        ("SyncSchedule", "cron()"),
        ("SyncSchedule", "cron(0 3 * * ? *) "),
        ("SyncSchedule", "at(2030-01-01T00:00:00)"),
        ("SyncRequest", "ghcr.io/org/app"),
        ("SyncRequest", r#"["ghcr.io/org/app"]"#),
        ("SyncRequest", r#"{"semver":">=1.0"}"#),
        ("SyncMaxConcurrency", "0"),
        ("SyncMaxConcurrency", "1001"),
        ("SyncToleratedFailurePercentage", "101"),
        ("SyncToleratedFailurePercentage", "-1"),
        ("SyncMaxPromotions", "0"),
        ("SyncMaxPromotions", "1001"),
    ] {
        assert!(
            check_parameter(&params[name], value).is_err(),
            "{name} accepts {value:?}"
        );
    }
    // The defaults functions/README.md documents (3 at once: under ECR's PutImage rate).
    for (name, default) in [
        ("SyncMaxConcurrency", 3),
        ("SyncToleratedFailurePercentage", 20),
        ("SyncMaxPromotions", 200),
    ] {
        assert_eq!(params[name]["Default"], default, "{name}");
    }
    assert_eq!(
        t["Outputs"]["SyncStateMachineArn"]["Value"],
        json!({"Ref": "SyncStateMachine"})
    );
}

/// A parameter's `Description`, or "".
fn p_description(p: &Value) -> &str {
    p["Description"].as_str().unwrap_or_default()
}

/// What CloudFormation checks before it creates anything.
fn check_parameter(p: &Value, value: &str) -> Result<(), String> {
    if let Some(allowed) = p["AllowedValues"].as_array()
        && !allowed.iter().filter_map(scalar).any(|a| a == value)
    {
        return Err(format!("not one of {allowed:?}"));
    }
    let len = value.chars().count() as u64;
    if p["MinLength"].as_u64().is_some_and(|m| len < m) {
        return Err("too short".into());
    }
    if p["MaxLength"].as_u64().is_some_and(|m| len > m) {
        return Err("too long".into());
    }
    if let Some(pattern) = p["AllowedPattern"].as_str() {
        // CloudFormation matches the whole value.
        let re = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())?;
        if !re.is_match(value) {
            return Err(format!("does not match {pattern}"));
        }
    }
    if p["Type"] == "Number" {
        let n: f64 = value.parse().map_err(|_| "not a number".to_owned())?;
        if p["MinValue"].as_f64().is_some_and(|m| n < m)
            || p["MaxValue"].as_f64().is_some_and(|m| n > m)
        {
            return Err("out of range".into());
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Template reading
// ------------------------------------------------------------------------------------------------

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn template_path() -> PathBuf {
    root().join("infra/template.yaml")
}

/// The template as JSON. Panics on short-form intrinsics (`!Ref`), which would otherwise read
/// as opaque tagged values.
fn template() -> Value {
    let text = std::fs::read_to_string(template_path()).expect("infra/template.yaml");
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("template YAML");
    reject_tags(&yaml, "");
    serde_json::to_value(&yaml).expect("template as JSON")
}

fn reject_tags(v: &serde_yaml_ng::Value, at: &str) {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Tagged(t) => panic!(
            "infra/template.yaml uses the short form {} at {at}; write the long form (Ref:, Fn::Sub:, ...)",
            t.tag
        ),
        Y::Sequence(s) => s
            .iter()
            .enumerate()
            .for_each(|(i, x)| reject_tags(x, &format!("{at}[{i}]"))),
        Y::Mapping(m) => m.iter().for_each(|(k, x)| {
            reject_tags(x, &format!("{at}.{}", k.as_str().unwrap_or("?")));
        }),
        _ => {}
    }
}

fn resources(t: &Value) -> impl Iterator<Item = (&String, &Value)> {
    t["Resources"].as_object().expect("Resources").iter()
}

fn parameter_defaults(t: &Value) -> BTreeMap<String, String> {
    t["Parameters"]
        .as_object()
        .expect("Parameters")
        .iter()
        .map(|(k, p)| (k.clone(), scalar(&p["Default"]).unwrap_or_default()))
        .collect()
}

/// Strings and numbers as CloudFormation sees parameter values: text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Resolves `Ref` and `Fn::Sub` of parameters (and a few pseudo parameters) in `v`. A resource
/// attribute in `Fn::Sub` (`${Role.Arn}`) becomes [`getatt`]'s marker, which names it.
fn resolve(v: &Value, params: &BTreeMap<String, String>) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("Ref") => {
            let name = m["Ref"].as_str().expect("Ref name");
            Value::String(pseudo_or_param(name, params))
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => {
            let text = m["Fn::Sub"].as_str().expect("Fn::Sub with a string");
            let var = Regex::new(r"\$\{([A-Za-z0-9_:.]+)\}").expect("regex");
            Value::String(
                var.replace_all(text, |c: &regex::Captures<'_>| {
                    pseudo_or_param(&c[1], params)
                })
                .into_owned(),
            )
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), resolve(x, params)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| resolve(x, params)).collect()),
        other => other.clone(),
    }
}

fn pseudo_or_param(name: &str, params: &BTreeMap<String, String>) -> String {
    match name {
        "AWS::AccountId" => ACCOUNT.to_owned(),
        "AWS::Region" => REGION.to_owned(),
        "AWS::Partition" => "aws".to_owned(),
        "AWS::URLSuffix" => "amazonaws.com".to_owned(),
        _ if !name.contains("::") && name.contains('.') => {
            let (resource, attribute) = name.split_once('.').expect("a dot");
            getatt(resource, attribute)
        }
        _ => params
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("cannot resolve {name} without deploying")),
    }
}

/// What `${Resource.Attribute}` resolves to here: known only once deployed, so a marker naming
/// the resource.
fn getatt(resource: &str, attribute: &str) -> String {
    format!("<GetAtt {resource}.{attribute}>")
}

/// The resource a [`getatt`] marker names with `attribute`, if `s` is one.
fn getatt_target<'a>(s: &'a str, attribute: &str) -> Option<&'a str> {
    s.strip_prefix("<GetAtt ")?
        .strip_suffix('>')?
        .strip_suffix(attribute)?
        .strip_suffix('.')
}

/// Whether a resource's `Condition` holds under `params`.
fn condition_holds(t: &Value, params: &BTreeMap<String, String>, r: &Value) -> bool {
    r["Condition"]
        .as_str()
        .is_none_or(|name| named_condition(t, params, name))
}

/// A named condition of the template.
fn named_condition(t: &Value, params: &BTreeMap<String, String>, name: &str) -> bool {
    let cond = &t["Conditions"][name];
    assert!(!cond.is_null(), "no condition {name}");
    evaluate_condition(t, params, cond)
}

/// `Fn::Equals` of parameters, pseudo parameters and literals, `Fn::Not`, `Fn::And`, `Fn::Or`
/// and `Condition` references: what the template's conditions use.
fn evaluate_condition(t: &Value, params: &BTreeMap<String, String>, cond: &Value) -> bool {
    let obj = cond
        .as_object()
        .filter(|m| m.len() == 1)
        .unwrap_or_else(|| panic!("not a condition function: {cond}"));
    let (function, args) = obj.iter().next().expect("one key");
    let args = list(args);
    match function.as_str() {
        "Fn::Equals" => {
            assert_eq!(args.len(), 2, "{cond}");
            let text = |v: &Value| {
                scalar(&resolve(v, params)).unwrap_or_else(|| panic!("cannot compare {v}"))
            };
            text(&args[0]) == text(&args[1])
        }
        "Fn::Not" => {
            assert_eq!(args.len(), 1, "{cond}");
            !evaluate_condition(t, params, &args[0])
        }
        "Fn::And" => args.iter().all(|c| evaluate_condition(t, params, c)),
        "Fn::Or" => args.iter().any(|c| evaluate_condition(t, params, c)),
        "Condition" => named_condition(t, params, args[0].as_str().expect("a name")),
        other => panic!("unsupported condition function {other}: {cond}"),
    }
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

fn strings(v: &Value) -> Vec<String> {
    list(v)
        .iter()
        .map(|x| x.as_str().expect("a string").to_owned())
        .collect()
}

fn asl_definitions() -> Vec<PathBuf> {
    let dir = root().join("statemachine");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".asl.json")))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

// ------------------------------------------------------------------------------------------------
// Tools
// ------------------------------------------------------------------------------------------------

/// The program at one of `work_paths` (relative to the workspace root), else on PATH; panics
/// naming the program and the set-up component that installs it.
fn tool(program: &str, work_paths: &[&str], component: &str) -> PathBuf {
    for p in work_paths {
        let path = root().join(p);
        if path.is_file() {
            return path;
        }
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is neither in {work_paths:?} nor on PATH; the infrastructure tests \
                 need it. Run `scripts/setup.sh {component}` (or `scripts/test.sh`)."
            )
        })
}

/// PATH with .work/node's Node 22 first, for the Node tools' `#!/usr/bin/env node`.
fn node_path() -> std::ffi::OsString {
    let mut dirs = vec![root().join(".work/node/node_modules/.bin")];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).expect("PATH")
}

/// Runs an offline checker with no AWS credentials or telemetry, and times it.
fn run_tool(cmd: &mut Command) -> (std::process::Output, Duration) {
    cmd.current_dir(root())
        .env("SAM_CLI_TELEMETRY", "0")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN");
    let start = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (out, start.elapsed())
}

fn assert_success(what: &str, out: &std::process::Output, took: Duration) {
    assert!(
        out.status.success(),
        "`{what}` failed with {} after {took:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{what}: ok in {took:.1?}");
}

/// The trusted repository's default lifecycle policy is what `promote lifecycle --environments
/// dev,staging,prod` prints (the fixture both are compared with; environment::lifecycle's unit
/// test compares the generator with the same file).
#[test]
fn the_default_lifecycle_policy_is_the_generated_one() {
    let t = template();
    let default = t["Parameters"]["TrustedLifecyclePolicy"]["Default"]
        .as_str()
        .expect("TrustedLifecyclePolicy default");
    let fixture =
        std::fs::read_to_string(root().join("tests/fixtures/lifecycle/dev-staging-prod.json"))
            .expect("fixture");
    let parse = |s: &str| serde_json::from_str::<Value>(s).expect("JSON");
    assert_eq!(parse(default), parse(&fixture));
    let run =
        crate::support::cli::Promote::new(["lifecycle", "--environments", "dev,staging,prod"])
            .run();
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_eq!(run.json(), parse(default));
}

/// Requests and outcomes go through the pipeline's own bus, whose policy denies `PutEvents` to
/// every principal but the state machine and the `PromotionRequesters` roles; the "Promotion
/// Requested" rule lives there, the ECR rules on the default bus (AWS events arrive only there).
#[test]
fn requests_and_outcomes_use_the_pipelines_own_bus_and_only_named_principals_put_events() {
    let t = template();
    let r = &t["Resources"];
    assert_eq!(r["PromotionEventBus"]["Type"], "AWS::Events::EventBus");
    let bus = json!({"Ref": "PromotionEventBus"});
    assert_eq!(
        r["PromotionRequestedRule"]["Properties"]["EventBusName"], bus,
        "the Promotion Requested rule listens on the pipeline's bus, not the default one"
    );
    assert_eq!(
        r["PromotionStateMachine"]["Properties"]["DefinitionSubstitutions"]["EventBusName"], bus,
        "outcomes are emitted on the pipeline's bus"
    );
    for (id, rule) in r.as_object().expect("Resources") {
        if rule["Type"] == "AWS::Events::Rule" && id != "PromotionRequestedRule" {
            assert_eq!(rule["Properties"]["EventBusName"], "default", "{id}");
        }
    }

    let policy = &r["PromotionEventBusPolicy"];
    assert_eq!(policy["Type"], "AWS::Events::EventBusPolicy");
    assert_eq!(policy["Properties"]["EventBusName"], bus);
    let s = &policy["Properties"]["Statement"];
    assert_eq!(s["Effect"], "Deny", "{s}");
    assert_eq!(s["Principal"], "*", "{s}");
    assert_eq!(s["Action"], "events:PutEvents", "{s}");
    assert_eq!(
        s["Resource"],
        json!({"Fn::GetAtt": ["PromotionEventBus", "Arn"]})
    );
    let exempt = &s["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]["Fn::If"];
    assert_eq!(exempt[0], "HasGitHubWebhook", "{s}");
    // With the webhook: its function's role too, and nobody else's.
    let with_webhook = &exempt[1]["Fn::If"];
    assert_eq!(with_webhook[0], "HasPromotionRequesters", "{s}");
    assert_eq!(
        with_webhook[1]["Fn::Split"],
        json!([",", {"Fn::Sub": "${StateMachineRole.Arn},${GitHubWebhookFunctionRole.Arn},${PromotionRequesters}"}]),
        "{s}"
    );
    assert_eq!(
        with_webhook[2],
        json!([{"Fn::GetAtt": ["StateMachineRole", "Arn"]},
            {"Fn::GetAtt": ["GitHubWebhookFunctionRole", "Arn"]}]),
        "{s}"
    );
    let exempt = &exempt[2]["Fn::If"];
    assert_eq!(exempt[0], "HasPromotionRequesters", "{s}");
    // With requesters: the state machine role and exactly the parameter's roles.
    assert_eq!(
        exempt[1]["Fn::Split"],
        json!([",", {"Fn::Sub": "${StateMachineRole.Arn},${PromotionRequesters}"}]),
        "{s}"
    );
    // Without (the default): the state machine role alone.
    assert_eq!(
        exempt[2],
        json!([{"Fn::GetAtt": ["StateMachineRole", "Arn"]}]),
        "{s}"
    );
    // The webhook's role may put events on that bus and read its one secret, nothing else.
    let webhook: Vec<Grant> = grants(&t)
        .into_iter()
        .filter(|g| g.holder == "GitHubWebhookFunctionRole")
        .collect();
    let actions: BTreeSet<String> = webhook.iter().flat_map(|g| g.actions()).collect();
    assert_eq!(
        actions,
        set(&[
            "events:PutEvents",
            "secretsmanager:GetSecretValue",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords"
        ]),
        "github-webhook's grants"
    );
    for g in &webhook {
        if g.actions().contains(&"events:PutEvents".to_owned()) {
            assert_eq!(
                g.statement["Resource"],
                json!({"Fn::GetAtt": ["PromotionEventBus", "Arn"]})
            );
        }
        if g.actions()
            .contains(&"secretsmanager:GetSecretValue".to_owned())
        {
            assert_eq!(
                g.statement["Resource"],
                json!({"Ref": "GitHubWebhookSecretArn"})
            );
        }
    }
    assert_eq!(t["Parameters"]["PromotionRequesters"]["Default"], "");
    for ok in [
        "",
        "arn:aws:iam::123456789012:role/release-bot",
        "arn:aws:iam::123456789012:role/release-bot,arn:aws:iam::123456789012:role/ci/deployer",
    ] {
        check_parameter(&t["Parameters"]["PromotionRequesters"], ok)
            .unwrap_or_else(|e| panic!("PromotionRequesters refuses {ok:?}: {e}"));
    }
}

/// A deployment whose ingress prefix equals the quarantine or trusted one would feed the
/// pipeline's own pushes back into it: the template's `Rules` refuse equal prefixes at deploy
/// time (CloudFormation cannot test "is a prefix of"; the functions refuse that at start-up).
#[test]
fn equal_repository_prefixes_are_refused_at_deploy_time() {
    let t = template();
    let assertions = list(&t["Rules"]["RepositoryPrefixesDiffer"]["Assertions"]);
    let mut pairs = BTreeSet::new();
    for a in &assertions {
        let equals = &a["Assert"]["Fn::Not"][0]["Fn::Equals"];
        let refs: Vec<&str> = list(equals)
            .iter()
            .map(|v| {
                let r = v["Ref"].as_str().expect("a Ref");
                PREFIXES.into_iter().find(|p| *p == r).expect("a prefix")
            })
            .collect();
        assert_eq!(refs.len(), 2, "{a}");
        assert!(
            a["AssertDescription"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{a}"
        );
        pairs.insert((refs[0].min(refs[1]), refs[0].max(refs[1])));
    }
    assert_eq!(pairs.len(), 6, "every pair of the four prefixes: {pairs:?}");
}

/// Load: every function's reserved concurrency comes from one parameter (none by default), and
/// every dead-letter queue the rules use has an alarm on its visible messages.
#[test]
fn functions_reserve_concurrency_by_parameter_and_dead_letters_raise_an_alarm() {
    let t = template();
    assert_eq!(
        t["Globals"]["Function"]["ReservedConcurrentExecutions"],
        json!({"Fn::If": ["ReservesConcurrency", {"Ref": "FunctionReservedConcurrency"}, {"Ref": "AWS::NoValue"}]})
    );
    for (id, r) in resources(&t) {
        if r["Type"] == "AWS::Serverless::Function" {
            assert!(
                r["Properties"]["ReservedConcurrentExecutions"].is_null(),
                "{id} overrides the reserved concurrency"
            );
        }
    }
    assert_eq!(t["Parameters"]["FunctionReservedConcurrency"]["Default"], 0);

    let mut queues = BTreeSet::new();
    for (_, r) in resources(&t) {
        if r["Type"] == "AWS::Events::Rule" {
            for target in list(&r["Properties"]["Targets"]) {
                let arn = &target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"];
                queues.insert(arn[0].as_str().expect("a queue").to_owned());
            }
        }
    }
    assert!(!queues.is_empty());
    for q in &queues {
        let alarmed = resources(&t).any(|(_, r)| {
            r["Type"] == "AWS::CloudWatch::Alarm"
                && r["Properties"]["Namespace"] == "AWS/SQS"
                && r["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
                && r["Properties"]["Threshold"] == 0
                && r["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
                && r["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"]
                    == json!([q, "QueueName"])
        });
        assert!(alarmed, "no alarm on the dead-letter queue {q}");
    }
}
