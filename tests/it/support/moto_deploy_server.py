#!/usr/bin/env python3
"""Test helper (not shipped): scripts/moto_server.py with the corrections tests/it/deploy.rs needs.

    .work/venv/bin/python tests/it/support/moto_deploy_server.py -H 127.0.0.1 -p 5000

Everything else is scripts/moto_server.py (itself moto_server with KMS DIGEST signing and ECR
tokens corrected), run as it is, with the same command line. Like it, this refuses to start,
naming the moto version, when what it corrects is no longer there. Each correction makes moto do
what AWS documents; none lets a caller do what AWS would refuse.

1. IAM evaluation per resource, for ECR, KMS and Secrets Manager. moto (5.2.5) evaluates a
   caller's identity policies (with INITIAL_NO_AUTH_ACTION_COUNT set) against the request's
   resource only for the services whose response class has `_determine_resource` (SQS, IAM roles,
   sts:AssumeRole; S3 apart); for every other service the resource is "*", so an Allow scoped to
   a resource ARN never matches (moto denies what AWS allows) and a Deny scoped to one never
   applies (moto allows what AWS denies). The Service Authorization Reference gives the resource
   each action is authorized against: for ECR's repository actions (PutImage, BatchGetImage,
   InitiateLayerUpload, CreateRepository, ...) the repository,
   `arn:${Partition}:ecr:${Region}:${Account}:repository/${RepositoryName}` (none for
   GetAuthorizationToken); for KMS's key actions (Sign, GetPublicKey, DescribeKey, ...) the key,
   `arn:${Partition}:kms:${Region}:${Account}:key/${KeyId}`, also when the request names it by
   alias (KMS resolves the alias to its key); for Secrets Manager's GetSecretValue the secret,
   `arn:${Partition}:secretsmanager:${Region}:${Account}:secret:${SecretId}` (the full ARN, with
   its random suffix). This adds `_determine_resource` to moto's ECR, KMS and Secrets Manager
   responses, answering that ARN; a request without a repository, key or secret (or naming one
   moto does not hold) stays "*", as before. moto's own matching then applies: `*` in a policy's
   Resource is a wildcard, and conditions other than StringEquals are taken as met, which this
   does not change.

2. The SigV4 signature of a request without a body (Lambda's GetFunction is a GET) covers the hash
   of the empty payload (Signature Version 4, "Create a canonical request": HashedPayload is the
   SHA-256 of the empty string then). moto, when it checks signatures, hashes its parsed request
   parameters instead when the body is empty, and for a GET without a query string those are the
   request's headers: every such request fails with SignatureDoesNotMatch, whoever signs it. This
   makes moto hash the empty body of a GET, HEAD or DELETE without one; every other request is
   checked as before (a form-encoded POST may reach moto with its body already parsed).

3. `Ref` of an `AWS::Events::EventBus` is the bus's name (the resource's "Return values"). moto's
   EventBus model has no `physical_resource_id`, so its CloudFormation hands the model object to
   whatever refers to the bus (an `AWS::Events::Rule`'s `EventBusName` then fails with
   AttributeError, a 500, and CreateStack with it). This gives it one: its name.

4. The inline policies of an `AWS::IAM::Role` (its `Policies` property) are JSON documents in IAM,
   as PutRolePolicy stores them. moto's CloudFormation hands each `PolicyDocument` to the role as
   the parsed object and the role keeps it so: GetRolePolicy answers its Python repr
   (`{'Statement': ...}`, not JSON), and evaluating the role's permissions fails (a 500), the
   evaluator reading JSON text. This stores a document that is not text yet as its JSON, as moto
   already does for `AssumeRolePolicyDocument` (and for `AWS::IAM::Policy`).

5. An `AWS::KMS::Key` has the `KeySpec` and `KeyUsage` of its template (defaults
   SYMMETRIC_DEFAULT and ENCRYPT_DECRYPT, the resource's documentation) and its `KeyPolicy` as the
   JSON document CreateKey takes. moto's CloudFormation creates every key SYMMETRIC_DEFAULT and
   ENCRYPT_DECRYPT whatever the template says (an ECC_NIST_P256 signing key cannot sign, and
   DescribeKey reports the wrong spec) and keeps the parsed policy object, on which DescribeKey
   fails (a 500: its key-policy check reads JSON text). This creates the key as moto's CreateKey
   would with those properties; `Description`, `Tags`, `EnableKeyRotation`, `Enabled` as before.

6. An `AWS::StepFunctions::StateMachine` gets its `DefinitionSubstitutions` (CloudFormation
   replaces each `${key}` of the definition with the key's value), `LoggingConfiguration`,
   `TracingConfiguration` and `StateMachineType`. moto's CloudFormation passes only the name, the
   definition string, the role and the tags: the placeholders stay in the definition, logging is
   OFF and tracing disabled whatever the template says. This passes the four to moto's
   CreateStateMachine, in the API's casing (`level`, `includeExecutionData`, `destinations`,
   `cloudWatchLogsLogGroup`, `logGroupArn`, `enabled`).

7. An `AWS::Lambda::Function` gets its `Architectures` and `TracingConfig`, which moto's
   CreateFunction keeps but its CloudFormation does not pass on (every function is x86_64 and
   PassThrough there). moto has no `LoggingConfig` at all; that stays missing.

8. `Fn::GetAtt` of an `AWS::Logs::LogGroup`'s `Arn` ends in `:*`
   (`arn:aws:logs:us-east-1:123456789012:log-group:name:*`, the resource's "Return values"), the
   form IAM statements on a log group's streams rely on. moto answers the ARN without `:*` (its
   DescribeLogGroups has both: `arn` with, `logGroupArn` without). This answers the documented
   one.
"""
import inspect
import json
import os
import runpy
import sys

import moto


def _fail(what: str) -> None:
    sys.exit(
        f"moto_deploy_server.py: {what} in moto {moto.__version__} (the corrections were written "
        "for moto 5.2.5); check whether this moto does it itself and update "
        "tests/it/support/moto_deploy_server.py"
    )


try:
    from moto.awslambda.models import LambdaFunction
    from moto.core.responses import BaseResponse
    from moto.ecr.responses import ECRResponse
    from moto.events.models import EventBus
    from moto.iam.access_control import IAMRequestBase
    from moto.iam.models import Role
    from moto.kms.models import Key, kms_backends
    from moto.kms.responses import KmsResponse
    from moto.logs.models import LogGroup
    from moto.secretsmanager.responses import SecretsManagerResponse
    from moto.stepfunctions.models import StateMachine, StepFunctionBackend, stepfunctions_backends
    from moto.stepfunctions.utils import cfn_to_api_tags
    from moto.utilities.utils import get_partition
except ImportError as e:
    _fail(f"cannot import {e.name}")


def _source(function) -> str:
    return inspect.getsource(getattr(function, "__func__", function))


# What each correction replaces must still be there, and still be wrong.
if "_determine_resource" not in _source(BaseResponse.call_action):
    _fail("BaseResponse.call_action no longer asks _determine_resource")
for _owner in (ECRResponse, KmsResponse, SecretsManagerResponse):
    if hasattr(_owner, "_determine_resource"):
        _fail(f"{_owner.__name__} has its own _determine_resource now")
if "self._body or self._data" not in _source(IAMRequestBase._create_aws_request):
    _fail("IAMRequestBase._create_aws_request no longer signs `self._body or self._data`")
if hasattr(EventBus, "physical_resource_id"):
    _fail("EventBus has a physical_resource_id now")
if "put_policy" not in _source(Role.create_from_cloudformation_json):
    _fail("Role.create_from_cloudformation_json no longer calls put_policy")
if "SYMMETRIC_DEFAULT" not in _source(Key.create_from_cloudformation_json):
    _fail("Key.create_from_cloudformation_json reads KeySpec now")
if "DefinitionSubstitutions" in _source(StateMachine.create_from_cloudformation_json):
    _fail("StateMachine reads DefinitionSubstitutions now")
if "Architectures" in _source(LambdaFunction.create_from_cloudformation_json):
    _fail("LambdaFunction passes Architectures now")
if "return self.arn" not in _source(LogGroup.get_cfn_attribute):
    _fail("LogGroup.get_cfn_attribute no longer answers self.arn")
_sm_parameters = inspect.signature(StepFunctionBackend.create_state_machine).parameters
if not {"loggingConfiguration", "tracingConfiguration", "sm_type"} <= set(_sm_parameters):
    _fail("StepFunctionBackend.create_state_machine takes other parameters")


def _body(response) -> dict:
    try:
        body = json.loads(response.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


# ---- 1. IAM evaluation against the repository, key or secret -------------------------------------


def _ecr_resource(self) -> str:
    body = _body(self)
    name = body.get("repositoryName")
    if not isinstance(name, str) or not name:
        return "*"
    account = body.get("registryId") or self.current_account
    return f"arn:{get_partition(self.region)}:ecr:{self.region}:{account}:repository/{name}"


def _kms_resource(self) -> str:
    key_id = _body(self).get("KeyId")
    if not isinstance(key_id, str) or not key_id:
        return "*"
    try:
        # A key id, key ARN, alias name or alias ARN, as KMS accepts them.
        return self.kms_backend.describe_key(key_id).arn
    except Exception:  # noqa: BLE001 - an unknown key: the call itself answers NotFound
        return "*"


def _secret_resource(self) -> str:
    secret_id = _body(self).get("SecretId")
    if not isinstance(secret_id, str) or not secret_id:
        return "*"
    secret = self.backend.secrets.get(secret_id)
    return secret.arn if secret is not None else "*"


ECRResponse._determine_resource = _ecr_resource
KmsResponse._determine_resource = _kms_resource
SecretsManagerResponse._determine_resource = _secret_resource

# ---- 2. A request without a body is signed over the empty payload --------------------------------

_create_aws_request = IAMRequestBase._create_aws_request


def _create_aws_request_empty_body(self):
    # A POST's form parameters may reach moto parsed (its raw body then reads empty): keep those.
    if self._body or self._method not in ("GET", "HEAD", "DELETE"):
        return _create_aws_request(self)
    data, self._data = self._data, b""
    try:
        return _create_aws_request(self)
    finally:
        self._data = data


IAMRequestBase._create_aws_request = _create_aws_request_empty_body

# ---- 3. Ref of an event bus is its name ----------------------------------------------------------

EventBus.physical_resource_id = property(lambda self: self.name)

# ---- 4. A role's inline policies are JSON text ---------------------------------------------------

_put_policy = Role.put_policy


def _put_policy_as_json(self, policy_name, policy_json):
    if not isinstance(policy_json, str):
        policy_json = json.dumps(policy_json)
    return _put_policy(self, policy_name, policy_json)


Role.put_policy = _put_policy_as_json

# ---- 5. KMS keys as the template declares them ---------------------------------------------------


def _create_key(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    properties = cloudformation_json["Properties"]
    policy = properties.get("KeyPolicy")
    if policy is not None and not isinstance(policy, str):
        policy = json.dumps(policy)
    key = kms_backends[account_id][region_name].create_key(
        policy=policy,
        key_usage=properties.get("KeyUsage", "ENCRYPT_DECRYPT"),
        key_spec=properties.get("KeySpec", "SYMMETRIC_DEFAULT"),
        description=properties.get("Description"),
        tags=properties.get("Tags", []),
    )
    key.key_rotation_status = properties.get("EnableKeyRotation", False)
    key.enabled = properties.get("Enabled", True)
    return key


Key.create_from_cloudformation_json = classmethod(_create_key)

# ---- 6. State machines as the template declares them ---------------------------------------------


def _lower_first(value):
    """CloudFormation's `Level`/`CloudWatchLogsLogGroup` keys as the API spells them."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _lower_first(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_first(v) for v in value]
    return value


def _create_state_machine(cls, resource_name, cloudformation_json, account_id, region_name, **_):
    properties = cloudformation_json["Properties"]
    definition = properties.get("DefinitionString", "")
    for key, value in (properties.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    return stepfunctions_backends[account_id][region_name].create_state_machine(
        properties.get("StateMachineName", resource_name),
        definition,
        properties.get("RoleArn", ""),
        tags=cfn_to_api_tags(properties.get("Tags", [])),
        loggingConfiguration=_lower_first(properties.get("LoggingConfiguration")),
        tracingConfiguration=_lower_first(properties.get("TracingConfiguration")),
        sm_type=properties.get("StateMachineType"),
    )


StateMachine.create_from_cloudformation_json = classmethod(_create_state_machine)

# ---- 7. Lambda architectures and tracing ---------------------------------------------------------

_create_function = LambdaFunction.create_from_cloudformation_json.__func__


def _create_function_as_declared(cls, resource_name, cloudformation_json, *args, **kwargs):
    function = _create_function(cls, resource_name, cloudformation_json, *args, **kwargs)
    properties = cloudformation_json["Properties"]
    if "Architectures" in properties:
        function.architectures = list(properties["Architectures"])
    if "TracingConfig" in properties:
        function.tracing_config = dict(properties["TracingConfig"])
    return function


LambdaFunction.create_from_cloudformation_json = classmethod(_create_function_as_declared)

# ---- 8. A log group's Arn attribute ends in :* ---------------------------------------------------

_log_group_attribute = LogGroup.get_cfn_attribute


def _log_group_attribute_as_documented(self, attribute_name):
    value = _log_group_attribute(self, attribute_name)
    if attribute_name == "Arn" and not value.endswith(":*"):
        value += ":*"
    return value


LogGroup.get_cfn_attribute = _log_group_attribute_as_documented

if __name__ == "__main__":
    launcher = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts", "moto_server.py"
    )
    sys.argv[0] = launcher
    runpy.run_path(launcher, run_name="__main__")
