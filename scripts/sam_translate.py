#!/usr/bin/env python3
"""Translates the SAM template (infra/template.yaml) into plain CloudFormation, offline.

    .work/sam-venv/bin/python scripts/sam_translate.py infra/template.yaml \
        --code-uri s3://bucket/code.zip --inline-definitions > translated.json

It runs aws-sam-translator's own `transform` (what CloudFormation's AWS::Serverless-2016-10-31
transform runs) without any AWS call:

- the managed-policy loader returns the AWS-managed policies bundled with samtranslator
  (`samtranslator/internal/data/aws_managed_policies.json`, the map the transform consults first
  anyway) and never asks IAM; a policy name that map lacks would stay a bare name, which the
  script refuses (exit 2) rather than emit an invalid role;
- `AWS::Region`/`AWS::Partition` come from `--region` (default us-east-1), not from a boto3
  session or the environment;
- local `CodeUri` paths become `--code-uri` (an `s3://bucket/key` location of a code package),
  as `sam package` would make them after uploading the build; without `--code-uri` a local
  `CodeUri` is refused;
- with `--inline-definitions`, a local `DefinitionUri` (relative to the template's directory, as
  SAM resolves it) is replaced by `Definition`, the file's JSON, so the state machine's
  `DefinitionString` carries the definition itself (a `DefinitionUri` in S3 becomes
  `DefinitionS3Location`, which a stand-in without that bucket cannot read); its
  `DefinitionSubstitutions` pass through unchanged.

The translated template (JSON) goes to standard output, or to `--out`. Parameters keep their
defaults: the translation leaves `Ref`s to them for CloudFormation to resolve.
"""
import argparse
import copy
import json
import os
import sys

try:
    import yaml
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform
except ImportError as e:  # pragma: no cover - a missing venv is reported, not a traceback
    sys.exit(
        f"sam_translate.py: cannot import {e.name}; run it with .work/sam-venv/bin/python "
        "(scripts/setup.sh sam installs aws-sam-translator there)"
    )


class BundledManagedPolicyLoader(ManagedPolicyLoader):
    """The AWS-managed policies bundled with samtranslator, never IAM's ListPolicies."""

    def __init__(self, partition):
        # No IAM client: `_load_policies_from_iam` must never run.
        super().__init__(iam_client=None)
        self._policy_map = dict(get_bundled_managed_policy_map(partition) or {})

    def _load_policies_from_iam(self):
        raise RuntimeError("offline translation must not call IAM ListPolicies")


def _is_local(uri):
    return isinstance(uri, str) and not uri.startswith("s3://")


def _prepare(template, template_dir, code_uri, inline_definitions):
    """Fills CodeUri (and DefinitionUri) the way `sam package` leaves them."""
    t = copy.deepcopy(template)
    global_function = (t.get("Globals") or {}).get("Function") or {}
    if _is_local(global_function.get("CodeUri")):
        if not code_uri:
            sys.exit("sam_translate.py: Globals.Function.CodeUri is local; pass --code-uri")
        global_function["CodeUri"] = code_uri
    for name, resource in (t.get("Resources") or {}).items():
        props = resource.get("Properties") or {}
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function" and _is_local(props.get("CodeUri")):
            if not code_uri:
                sys.exit(f"sam_translate.py: {name}.CodeUri is a local path; pass --code-uri")
            props["CodeUri"] = code_uri
        if kind == "AWS::Serverless::StateMachine" and _is_local(props.get("DefinitionUri")):
            if not inline_definitions:
                sys.exit(
                    f"sam_translate.py: {name}.DefinitionUri is a local path; pass "
                    "--inline-definitions"
                )
            path = os.path.normpath(os.path.join(template_dir, props.pop("DefinitionUri")))
            with open(path, encoding="utf-8") as f:
                props["Definition"] = json.load(f)
    return t


def _bare_managed_policies(translated):
    """ManagedPolicyArns entries that are names, not ARNs (a policy the map did not know)."""
    bare = []
    for name, resource in translated.get("Resources", {}).items():
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        for arn in resource.get("Properties", {}).get("ManagedPolicyArns", []) or []:
            if isinstance(arn, str) and not arn.startswith("arn:"):
                bare.append(f"{name}: {arn}")
    return bare


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template")
    parser.add_argument("--code-uri", help="s3://bucket/key for every local CodeUri")
    parser.add_argument("--inline-definitions", action="store_true")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--partition", default="aws")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.code_uri and not args.code_uri.startswith("s3://"):
        sys.exit("sam_translate.py: --code-uri must be s3://bucket/key")

    with open(args.template, encoding="utf-8") as f:
        template = yaml.safe_load(f)
    prepared = _prepare(
        template,
        os.path.dirname(os.path.abspath(args.template)),
        args.code_uri,
        args.inline_definitions,
    )
    parameters = {"AWS::Region": args.region, "AWS::Partition": args.partition}
    try:
        translated = transform(prepared, parameters, BundledManagedPolicyLoader(args.partition))
    except InvalidDocumentException as e:
        causes = "; ".join(str(c) for c in e.causes)
        sys.exit(f"sam_translate.py: the SAM transform refused the template: {e} {causes}")
    bare = _bare_managed_policies(translated)
    if bare:
        print("sam_translate.py: unknown managed policies: " + ", ".join(bare), file=sys.stderr)
        sys.exit(2)
    text = json.dumps(translated, indent=1, sort_keys=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
