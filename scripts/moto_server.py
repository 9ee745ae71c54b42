#!/usr/bin/env python3
"""Hand-written corrections of a test stand-in: moto_server with two behaviours made AWS's.

Test infrastructure, not product code. Everything else is moto_server as installed, with the same
command line:

    .work/venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p 5000

It refuses to start, naming the moto version, when what it replaces is no longer there.

1. KMS `MessageType=DIGEST`. It reproduces what the KMS API reference says of the `MessageType`
request parameter of Sign (Verify says the same),
https://docs.aws.amazon.com/kms/latest/APIReference/API_Sign.html: with RAW, KMS uses the
standard signing algorithm, which begins with a hash function; with DIGEST it "skips the hashing
step in the signing algorithm", and "the length of the Message value must match the length of
hashed messages for the specified signing algorithm" (32 bytes for *_SHA_256). A DIGEST
signature therefore verifies over the original message, which cosign and our signer rely on.

It replaces `moto.kms.responses.KmsResponse.sign` and `.verify`. moto (5.2.5, the newest on PyPI
when this was written) reads `MessageType` there and drops it, and its backend hashes every
message: a DIGEST signature is over SHA-256(digest), so it does not verify over the message,
its own Verify still says it is valid, and a digest of any length is accepted (an open upstream
pull request, getmoto/moto#10202, would fix it). The replacements pass RAW requests (and those
without `MessageType`) to moto's own methods untouched. For DIGEST they refuse a digest of the
wrong length with ValidationException, let moto's backend make its usual checks (the key exists,
is enabled, is SIGN_VERIFY and offers the algorithm), then sign or verify the digest itself as
prehashed (cryptography's `Prehashed`) with the key moto holds: ECDSA, RSASSA_PKCS1_V1_5 and
RSASSA_PSS (MGF1 with the same hash and a salt as long as the hash, as KMS documents; moto's own
RAW PSS signatures use the longest salt instead and so fail a DIGEST Verify).

2. ECR `GetAuthorizationToken`. The ECR API reference (GetAuthorizationToken, AuthorizationData)
says the token is base64 of `user:password` (user `AWS`), valid for 12 hours (`expiresAt`); the
ECR user guide ("Registry authentication") and every client's experience put the password at
about 2,000 characters, which is why clients must not assume short passwords (htpasswd refuses
passwords over 256 characters, bcrypt reads 72 bytes: reference/test-infra.md section 1). moto
5.2.5 returns the password `<account>-auth-token` (23 characters) that expired in 2015. The
replacement returns, per registry id, a password of 2,000 base64 characters drawn at random once
per server (so every call of one test's server gets the same one: the ECR-faithful front in
tests/it/support/ecr_front.rs checks it) and `expiresAt` twelve hours from the call.
`MOTO_ECR_TOKENS=moto` in the environment keeps moto's own short token, for a stand-in that
stores the password in htpasswd (bench/cost-bench.sh).
"""
import base64
import functools
import json
import os
import sys
import time

import moto


def _fail(what: str) -> None:
    sys.exit(
        f"moto_server.py: {what} in moto {moto.__version__} (the corrections were written for "
        "moto 5.2.5's KMS and ECR); check whether this moto implements them itself and update "
        "scripts/moto_server.py"
    )


try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
    from moto.kms.exceptions import ValidationException
    from moto.kms.models import KmsBackend
    from moto.kms.responses import KmsResponse
    from moto.kms.utils import generate_private_key
    from moto.ecr.responses import ECRResponse
    from moto.core.responses import ActionResult
    from moto.server import main
except ImportError as e:
    _fail(f"cannot import {e.name}")

for _owner, _names in (
    (KmsResponse, ("sign", "verify", "_get_param", "_validate_key_id")),
    (KmsBackend, ("sign", "verify", "describe_key")),
    (ECRResponse, ("get_authorization_token", "_get_param")),
):
    for _name in _names:
        if not callable(getattr(_owner, _name, None)):
            _fail(f"{_owner.__module__}.{_owner.__name__}.{_name} not found")
# moto's key objects keep the `cryptography` key they sign with in `.private_key`.
if not isinstance(
    getattr(generate_private_key("ECC_NIST_P256"), "private_key", None),
    ec.EllipticCurvePrivateKey,
):
    _fail("a KMS key no longer holds its cryptography key in .private_key")

_HASHES = {"SHA_256": hashes.SHA256, "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}


def _hash(algorithm):
    """The hash of ECDSA_SHA_256, RSASSA_PKCS1_V1_5_SHA_384, RSASSA_PSS_SHA_512, ...; else None."""
    for suffix, hash_class in _HASHES.items():
        if isinstance(algorithm, str) and algorithm.endswith(suffix):
            return hash_class()
    return None


def _check_length(digest, algorithm):
    h = _hash(algorithm)
    if h is not None and (not isinstance(digest, bytes) or len(digest) != h.digest_size):
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")


def _scheme(algorithm):
    """(padding or None, Prehashed) for a signing algorithm moto has already accepted."""
    h = _hash(algorithm)
    if h is None:
        raise ValidationException(f"MessageType DIGEST is not supported for {algorithm}.")
    if algorithm.startswith("ECDSA_"):
        return None, utils.Prehashed(h)
    if algorithm.startswith("RSASSA_PSS_"):
        return padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), utils.Prehashed(h)
    if algorithm.startswith("RSASSA_PKCS1_V1_5_"):
        return padding.PKCS1v15(), utils.Prehashed(h)
    raise ValidationException(f"MessageType DIGEST is not supported for {algorithm}.")


def _private_key(response, key_id):
    return response.kms_backend.describe_key(key_id).private_key.private_key


def _sign_digest(self):
    key_id = self._get_param("KeyId")
    algorithm = self._get_param("SigningAlgorithm")
    digest = self._get_param("Message")
    self._validate_key_id(key_id)
    _check_length(digest, algorithm)
    # moto's checks and the key ARN; its signature (over SHA-256(digest)) is discarded.
    arn, _, algorithm = self.kms_backend.sign(
        key_id=key_id, message=digest, signing_algorithm=algorithm
    )
    pad, prehashed = _scheme(algorithm)
    key = _private_key(self, key_id)
    if pad is None:
        signature = key.sign(digest, ec.ECDSA(prehashed))
    else:
        signature = key.sign(digest, pad, prehashed)
    return json.dumps(
        {
            "KeyId": arn,
            "Signature": base64.b64encode(signature).decode("ascii"),
            "SigningAlgorithm": algorithm,
        }
    )


def _verify_digest(self):
    key_id = self._get_param("KeyId")
    algorithm = self._get_param("SigningAlgorithm")
    digest = self._get_param("Message")
    signature = self._get_param("Signature")
    if isinstance(signature, str):
        signature = base64.b64decode(signature.encode("utf-8"))
    self._validate_key_id(key_id)
    _check_length(digest, algorithm)
    if not signature:
        raise ValidationException(
            "1 validation error detected: Value at 'Signature' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1"
        )
    # moto's checks and the key ARN; its verdict (over SHA-256(digest)) is discarded.
    arn, _, algorithm = self.kms_backend.verify(
        key_id=key_id, message=digest, signature=signature, signing_algorithm=algorithm
    )
    pad, prehashed = _scheme(algorithm)
    public = _private_key(self, key_id).public_key()
    try:
        if pad is None:
            public.verify(signature, digest, ec.ECDSA(prehashed))
        else:
            public.verify(signature, digest, pad, prehashed)
        valid = True
    except InvalidSignature:
        valid = False
    return json.dumps({"KeyId": arn, "SignatureValid": valid, "SigningAlgorithm": algorithm})


def _digest_aware(original, on_digest):
    @functools.wraps(original)
    def handler(self):
        if self._get_param("MessageType") == "DIGEST":
            return on_digest(self)
        return original(self)

    return handler


KmsResponse.sign = _digest_aware(KmsResponse.sign, _sign_digest)
KmsResponse.verify = _digest_aware(KmsResponse.verify, _verify_digest)

# ---- 2. ECR GetAuthorizationToken -----------------------------------------------------------

# ECR's passwords are ~2,000 characters: 1,500 random bytes are 2,000 base64 characters.
_PASSWORDS: dict = {}
_TOKEN_HOURS = 12


def _ecr_password(registry_id):
    if registry_id not in _PASSWORDS:
        _PASSWORDS[registry_id] = base64.b64encode(os.urandom(1500)).decode("ascii")
    return _PASSWORDS[registry_id]


def _get_authorization_token(self):
    registry_ids = self._get_param("registryIds") or [self.current_account]
    expires = time.time() + _TOKEN_HOURS * 3600
    return ActionResult(
        {
            "authorizationData": [
                {
                    "authorizationToken": base64.b64encode(
                        f"AWS:{_ecr_password(rid)}".encode("ascii")
                    ).decode("ascii"),
                    "expiresAt": expires,
                    "proxyEndpoint": f"https://{rid}.dkr.ecr.{self.region}.amazonaws.com",
                }
                for rid in registry_ids
            ]
        }
    )


if os.environ.get("MOTO_ECR_TOKENS", "ecr") != "moto":
    ECRResponse.get_authorization_token = _get_authorization_token

if __name__ == "__main__":
    sys.exit(main())
