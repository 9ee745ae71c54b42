//! ECR lifecycle policy per environment.
//!
//! ECR evaluates rules from the lowest `rulePriority` up, and an image matched by a rule's tag
//! filter can no longer be expired by a rule of lower priority. So:
//!
//! 1. one count-based rule per environment, the **last** listed environment (production) first:
//!    keep its newest `keep` images tagged `<prefix>*`. Count-based on purpose: a retag re-puts an
//!    existing image, which does not reset `sinceImagePushed`, so an age rule would expire a
//!    digest promoted to prod today because it was first pushed months ago. One pattern per
//!    `tagPatternList`: its entries are ANDed, so listing two prefixes would match nothing;
//! 2. a rule matching the signature and referrer-fallback tags (`sha256-*`: `sha256-<hex>` and
//!    `sha256-<hex>.sig`) with a count no repository reaches, so that the catch-all below never
//!    expires the signature of an image that is kept (ECR removes OCI 1.1 referrers together with
//!    their subject on its own);
//! 3. a catch-all (`tagStatus: any`, which ECR requires to have the highest `rulePriority`)
//!    expiring everything else `expire_days` after its push.

use super::config::Environments;
use serde_json::{Value, json};

/// Effectively "never": more images than any repository holds.
const KEEP_SIGNATURES: u32 = 10_000;

/// The lifecycle policy document (what `LifecyclePolicyText` takes), rules in priority order.
pub fn policy(envs: &Environments, expire_days: u32) -> Value {
    let mut rules = Vec::new();
    for e in envs.all().iter().rev() {
        // Every template of the environment: the main one and the extra ones.
        for t in std::iter::once(&e.template).chain(&e.extra) {
            let priority = rules.len() + 1;
            rules.push(json!({
                "rulePriority": priority,
                "description": format!("{}: keep the newest {} images tagged {}*", e.name, e.keep, t.prefix()),
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": [format!("{}*", t.prefix())],
                    "countType": "imageCountMoreThan",
                    "countNumber": e.keep,
                },
                "action": {"type": "expire"},
            }));
        }
    }
    rules.push(json!({
        "rulePriority": rules.len() + 1,
        "description": "signatures and referrer fallback indexes: never expired before their image",
        "selection": {
            "tagStatus": "tagged",
            "tagPatternList": ["sha256-*"],
            "countType": "imageCountMoreThan",
            "countNumber": KEEP_SIGNATURES,
        },
        "action": {"type": "expire"},
    }));
    rules.push(json!({
        "rulePriority": rules.len() + 1,
        "description": format!("everything else: expire {expire_days} days after push"),
        "selection": {
            "tagStatus": "any",
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": expire_days,
        },
        "action": {"type": "expire"},
    }));
    json!({ "rules": rules })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(p: &Value) -> Vec<(u64, String)> {
        p["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let pat = r["selection"]["tagPatternList"]
                    .as_array()
                    .map(|l| {
                        assert_eq!(l.len(), 1, "one pattern per rule: entries are ANDed");
                        l[0].as_str().unwrap().to_owned()
                    })
                    .unwrap_or_else(|| r["selection"]["tagStatus"].as_str().unwrap().to_owned());
                (r["rulePriority"].as_u64().unwrap(), pat)
            })
            .collect()
    }

    #[test]
    fn production_first_then_signatures_then_the_catch_all() {
        let envs = Environments::from_names(&["dev", "staging", "prod"], 30).unwrap();
        let p = policy(&envs, 30);
        assert_eq!(
            patterns(&p),
            [
                (1, "prod-*".to_owned()),
                (2, "staging-*".to_owned()),
                (3, "dev-*".to_owned()),
                (4, "sha256-*".to_owned()),
                (5, "any".to_owned()),
            ]
        );
        for r in p["rules"].as_array().unwrap().iter().take(3) {
            assert_eq!(r["selection"]["countType"], "imageCountMoreThan");
            assert_eq!(r["selection"]["countNumber"], 30);
            assert_eq!(r["action"]["type"], "expire");
        }
        let last = &p["rules"][4]["selection"];
        assert_eq!(last["countType"], "sinceImagePushed");
        assert_eq!(last["countUnit"], "days");
        // What the SAM template ships as LifecyclePolicyText's default.
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            include_str!("../../../../tests/fixtures/lifecycle/dev-staging-prod.json").trim()
        );
    }

    #[test]
    fn one_environment_and_many_environments_with_their_own_keep_and_templates() {
        let one = policy(&Environments::from_names(&["prod"], 5).unwrap(), 7);
        assert_eq!(
            patterns(&one),
            [
                (1, "prod-*".into()),
                (2, "sha256-*".into()),
                (3, "any".into())
            ]
        );
        assert_eq!(one["rules"][0]["selection"]["countNumber"], 5);
        assert_eq!(one["rules"][2]["selection"]["countNumber"], 7);

        let envs = Environments::parse(
            "environments:\n- {name: dev, keep: 10}\n- {name: qa}\n- {name: staging}\n\
             - {name: prod, keep: 200, tag_template: 'release-{build}', extra_tags: ['prod-{build}']}\n",
        )
        .unwrap();
        let p = policy(&envs, 14);
        assert_eq!(
            patterns(&p),
            [
                (1, "release-*".into()),
                (2, "prod-*".into()),
                (3, "staging-*".into()),
                (4, "qa-*".into()),
                (5, "dev-*".into()),
                (6, "sha256-*".into()),
                (7, "any".into()),
            ]
        );
        assert_eq!(p["rules"][0]["selection"]["countNumber"], 200);
        assert_eq!(p["rules"][4]["selection"]["countNumber"], 10);
        assert_eq!(p["rules"][3]["selection"]["countNumber"], 30);
    }
}
