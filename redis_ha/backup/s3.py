"""An S3 target: path-style requests signed with AWS Signature Version 4 (hmac and
hashlib only). PUT streams the file with its sha256 as the signed payload hash, GET
streams to a file, ListObjectsV2 follows continuation tokens, DELETE removes one
object at a time. Credentials come from a JSON file
{"accessKeyId": ..., "secretAccessKey": ..., "sessionToken": optional}.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import ssl
import urllib.parse
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from .config import BackupError, ConfigError
from .manifest import ID_PATTERN, MANIFEST
from .targets import Listing

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_CHUNK = 1 << 20
_UNRESERVED = "-_.~"


def _quote(value: str, safe: str = _UNRESERVED) -> str:
    return urllib.parse.quote(value, safe=safe)


def signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    payload_sha256: str,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    moment: datetime,
) -> dict[str, str]:
    """`headers` (which must hold `host`) plus x-amz-date, x-amz-content-sha256 and
    the Authorization header of Signature Version 4."""
    amz_date = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    signed["x-amz-date"] = amz_date
    signed["x-amz-content-sha256"] = payload_sha256
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            _quote(path, safe="/" + _UNRESERVED),
            "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items())),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(signing_key(secret_key, amz_date[:8], region), to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return signed


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class S3Target:
    def __init__(
        self,
        endpoint: str,
        bucket: str,
        *,
        prefix: str = "",
        region: str = "us-east-1",
        access_key: str,
        secret_key: str,
        session_token: str | None = None,
        ca_file: str | None = None,
        page_size: int = 1000,
        timeout: float = 60.0,
    ) -> None:
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"target.endpoint must be an http(s) URL, not {endpoint!r}")
        self.scheme, self.host, self.port = url.scheme, url.hostname, url.port
        self.base_path = url.path.rstrip("/")
        self.bucket, self.prefix, self.region = bucket, prefix.strip("/"), region
        self._access, self._secret, self._token = access_key, secret_key, session_token
        self.ca_file, self.page_size, self.timeout = ca_file, page_size, timeout
        self.description = f"s3 {endpoint} bucket {bucket} prefix {self.prefix or '(none)'}"

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> S3Target:
        for key in ("endpoint", "bucket", "credentialsFile"):
            if not spec.get(key):
                raise ConfigError(f"target.{key} is required for an s3 target")
        try:
            credentials = json.loads(Path(spec["credentialsFile"]).read_text())
            access, secret = credentials["accessKeyId"], credentials["secretAccessKey"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ConfigError(
                f"target.credentialsFile {spec['credentialsFile']} must hold "
                '{"accessKeyId": ..., "secretAccessKey": ...}'
            ) from None
        return cls(
            spec["endpoint"],
            spec["bucket"],
            prefix=str(spec.get("prefix", "")),
            region=str(spec.get("region", "us-east-1")),
            access_key=access,
            secret_key=secret,
            session_token=credentials.get("sessionToken"),
            ca_file=spec.get("caFile"),
            page_size=int(spec.get("pageSize", 1000)),
        )

    # --- requests ---------------------------------------------------------------

    def _key(self, backup_id: str, name: str) -> str:
        if not ID_PATTERN.match(backup_id) or "/" in name:
            raise ValueError(f"bad backup file name {backup_id}/{name}")
        return f"{self.prefix}/{backup_id}/{name}" if self.prefix else f"{backup_id}/{name}"

    def _connection(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            context = ssl.create_default_context(cafile=self.ca_file)
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=context)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout, blocksize=_CHUNK)

    def _request(
        self,
        method: str,
        key: str | None,
        *,
        query: dict[str, str] | None = None,
        body: BinaryIO | bytes | None = None,
        length: int = 0,
        payload_sha256: str = EMPTY_SHA256,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        path = f"{self.base_path}/{self.bucket}" + (f"/{key}" if key is not None else "")
        query = query or {}
        host = self.host if self.port is None else f"{self.host}:{self.port}"
        headers = {"host": host}
        if self._token:
            headers["x-amz-security-token"] = self._token
        if method == "PUT":
            headers["content-length"] = str(length)
        signed = sign(
            method,
            path,
            query,
            headers,
            payload_sha256,
            access_key=self._access,
            secret_key=self._secret,
            region=self.region,
            moment=datetime.now(UTC),
        )
        target = _quote(path, safe="/" + _UNRESERVED)
        if query:
            target += "?" + "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
        conn = self._connection()
        try:
            conn.request(method, target, body=body, headers=signed)
            response = conn.getresponse()
        except OSError as error:
            conn.close()
            raise BackupError(f"{self.description}: {method} {key or ''}: {error}") from None
        if response.status >= 300:
            detail = response.read(4096).decode(errors="replace")
            conn.close()
            code = _xml_text(detail, "Code") or detail[:120]
            raise BackupError(f"{self.description}: {method} {key or '(bucket)'}: HTTP {response.status} {code}")
        return conn, response

    # --- the Target interface ----------------------------------------------------

    def put_file(self, backup_id: str, name: str, path: Path, sha256: str | None = None) -> None:
        digest = sha256 or _sha256_file(path)
        with path.open("rb") as body:
            conn, response = self._request(
                "PUT", self._key(backup_id, name), body=body, length=path.stat().st_size, payload_sha256=digest
            )
        response.read()
        conn.close()

    def put_bytes(self, backup_id: str, name: str, data: bytes) -> None:
        conn, response = self._request(
            "PUT",
            self._key(backup_id, name),
            body=data,
            length=len(data),
            payload_sha256=hashlib.sha256(data).hexdigest(),
        )
        response.read()
        conn.close()

    def get_file(self, backup_id: str, name: str, path: Path) -> None:
        conn, response = self._request("GET", self._key(backup_id, name))
        try:
            with path.open("wb") as out:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
        finally:
            conn.close()

    def get_bytes(self, backup_id: str, name: str) -> bytes:
        conn, response = self._request("GET", self._key(backup_id, name))
        try:
            return response.read()
        finally:
            conn.close()

    def keys(self) -> list[str]:
        """Every object key under the prefix (ListObjectsV2, page after page)."""
        found: list[str] = []
        token = None
        while True:
            query = {"list-type": "2", "max-keys": str(self.page_size)}
            if self.prefix:
                query["prefix"] = self.prefix + "/"
            if token:
                query["continuation-token"] = token
            conn, response = self._request("GET", None, query=query)
            try:
                root = ElementTree.fromstring(response.read())
            finally:
                conn.close()
            found += [el.text or "" for el in root.iter() if _local(el.tag) == "Key"]
            truncated = next((el.text for el in root.iter() if _local(el.tag) == "IsTruncated"), "false")
            token = next((el.text for el in root.iter() if _local(el.tag) == "NextContinuationToken"), None)
            if truncated != "true" or not token:
                return found

    def list(self) -> list[Listing]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        grouped: dict[str, list[str]] = {}
        for key in self.keys():
            parts = key[strip:].split("/")
            if len(parts) == 2 and ID_PATTERN.match(parts[0]):
                grouped.setdefault(parts[0], []).append(parts[1])
        return [Listing(i, MANIFEST in names, tuple(sorted(names))) for i, names in sorted(grouped.items())]

    def delete(self, backup_id: str) -> None:
        listing = next((item for item in self.list() if item.id == backup_id), None)
        if listing is None:
            return
        names = [MANIFEST] if MANIFEST in listing.names else []
        names += [n for n in listing.names if n != MANIFEST]
        for name in names:  # the manifest first: from then on the backup is incomplete
            conn, response = self._request("DELETE", self._key(backup_id, name))
            response.read()
            conn.close()

    def create_bucket(self) -> None:
        conn, response = self._request("PUT", None)
        response.read()
        conn.close()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_text(document: str, name: str) -> str | None:
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError:
        return None
    return next((el.text for el in root.iter() if _local(el.tag) == name), None)
