#!/usr/bin/env python3
"""Test helper (not shipped): a batch of AWS API calls, each signed (SigV4) with its credentials.

tests/it/deploy.rs runs it with .work/venv/bin/python (boto3 comes with moto there). moto resolves
the caller from the request's access key, so every call names the credentials it is made with: an
IAM user's access key, or the AccessKeyId/SecretAccessKey/SessionToken that sts:AssumeRole
returned. Input on stdin, one JSON object:

    {"endpoint": "http://127.0.0.1:PORT", "region": "us-east-1",
     "calls": [{"credentials": {"AccessKeyId": "...", "SecretAccessKey": "...",
                                "SessionToken": "..."},
                "service": "ecr", "operation": "PutImage", "params": {...}}, ...]}

A parameter value {"$base64": "..."} is sent as those bytes (S3 bodies, KMS messages). Output on
stdout: one JSON array, one entry per call in order, either {"ok": true, "result": {...}} (bytes as
{"$base64": ...}, dates as text) or {"ok": false, "code": "AccessDenied", "status": 403,
"message": "..."}. Every call is made, whatever the previous ones answered; nothing is retried.
"""
import base64
import datetime
import json
import sys

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {"$base64"}:
            return base64.b64decode(value["$base64"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _encode(value):
    if isinstance(value, (bytes, bytearray)):
        return {"$base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if hasattr(value, "read"):
        return _encode(value.read())
    return value


def main():
    request = json.load(sys.stdin)
    config = Config(
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        proxies={},
    )
    clients = {}
    results = []
    for call in request["calls"]:
        creds = call["credentials"]
        key = (call["service"], creds["AccessKeyId"])
        if key not in clients:
            session = boto3.session.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds.get("SessionToken"),
                region_name=request["region"],
            )
            clients[key] = session.client(
                call["service"], endpoint_url=request["endpoint"], config=config
            )
        client = clients[key]
        method = getattr(client, botocore.xform_name(call["operation"]))
        try:
            answer = method(**_decode(call.get("params") or {}))
            results.append({"ok": True, "result": _encode(answer)})
        except ClientError as e:
            error = e.response.get("Error", {})
            results.append(
                {
                    "ok": False,
                    "code": error.get("Code", ""),
                    "message": error.get("Message", ""),
                    "status": e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0),
                }
            )
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
