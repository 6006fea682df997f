"""API Gateway events shaped like AWS's documented samples ("Create AWS Lambda
proxy integrations for HTTP APIs" for payload 2.0, and the REST API "Input
format of a Lambda function for proxy integration" for 1.0), filled in for one
request."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

ACCOUNT = "123456789012"
API_ID = "r3pmxmplak"
DOMAIN = f"{API_ID}.execute-api.us-east-1.amazonaws.com"
SOURCE_IP = "192.0.2.10"
USER_AGENT = "corral-tests/1.0"


@dataclass
class Request:
    """One HTTP request, to be sent through gunicorn or as a Lambda event."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    # Header name -> values; more than one value makes a multi-value header.
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes | None = None

    @property
    def query_string(self) -> str:
        return urlencode(self.query)


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def _body(req: Request, base64_body: bool) -> tuple[str | None, bool]:
    if req.body is None:
        return None, False
    if base64_body:
        return base64.b64encode(req.body).decode("ascii"), True
    return req.body.decode("utf-8"), False


def http_api_v2(req: Request, *, base64_body: bool = False) -> dict[str, Any]:
    """HTTP API, payload format 2.0, `$default` route and stage."""
    body, is_b64 = _body(req, base64_body)
    now = time.time()
    # HTTP APIs lower-case header names and join repeated values with commas;
    # cookies travel apart, in `cookies`.
    headers = {
        "host": DOMAIN,
        "user-agent": USER_AGENT,
        "x-forwarded-for": SOURCE_IP,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    cookies: list[str] = []
    for name, values in req.headers.items():
        if name.lower() == "cookie":
            cookies.extend(values)
        else:
            headers[name.lower()] = ",".join(values)
    if req.body is not None:
        headers["content-length"] = str(len(req.body))
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": quote(req.path),
        "rawQueryString": req.query_string,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "domainName": DOMAIN,
            "domainPrefix": API_ID,
            "http": {
                "method": req.method,
                "path": req.path,
                "protocol": "HTTP/1.1",
                "sourceIp": SOURCE_IP,
                "userAgent": USER_AGENT,
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": is_b64,
    }
    if cookies:
        event["cookies"] = cookies
    if req.query:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in _grouped(req.query).items()}
    if body is not None:
        event["body"] = body
    return event


def rest_api_v1(req: Request, *, base64_body: bool = False) -> dict[str, Any]:
    """REST API, proxy integration on `/{proxy+}` in stage `prod`."""
    body, is_b64 = _body(req, base64_body)
    now = time.time()
    multi = {
        "Host": [DOMAIN],
        "User-Agent": [USER_AGENT],
        "X-Forwarded-For": [SOURCE_IP],
        "X-Forwarded-Port": ["443"],
        "X-Forwarded-Proto": ["https"],
    }
    multi.update(req.headers)
    if req.body is not None:
        multi["Content-Length"] = [str(len(req.body))]
    query = _grouped(req.query)
    return {
        "version": "1.0",
        "resource": "/{proxy+}",
        "path": req.path,
        "httpMethod": req.method,
        # The single-value maps hold the last value of each name.
        "headers": {k: v[-1] for k, v in multi.items()},
        "multiValueHeaders": multi,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "domainName": DOMAIN,
            "domainPrefix": API_ID,
            "extendedRequestId": "LgLpnGmPLvHcF3Q=",
            "httpMethod": req.method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": SOURCE_IP,
                "user": None,
                "userAgent": USER_AGENT,
                "userArn": None,
            },
            "path": f"/prod{req.path}",
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "resourceId": "123456",
            "resourcePath": "/{proxy+}",
            "stage": "prod",
        },
        "pathParameters": {"proxy": req.path.lstrip("/")},
        "stageVariables": None,
        "body": body,
        "isBase64Encoded": is_b64,
    }


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def from_lambda(result: dict[str, Any]) -> Response:
    """The response API Gateway would send for a Lambda proxy result."""
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ",".join(values)
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")
    return Response(int(result["statusCode"]), headers, body)


def scheduled_event(when: str) -> dict[str, Any]:
    """An EventBridge scheduled event (`aws.events`, "Scheduled Event")."""
    return {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": when,
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:{ACCOUNT}:rule/corral-prod-sweep"],
        "detail": {},
    }
