"""HTTP(S) checks with aiohttp: status, body conditions, response time, TLS certificate expiry.

Target fields (``type: http``):

- ``url`` (required), ``method`` (GET), ``headers`` ({}), ``follow_redirects`` (false).
- ``expect_status``: accepted codes, each an int (``204``), a class (``"2xx"``) or a range
  (``"200-399"``); default ``["2xx"]``. A 500 is never healthy unless listed here.
- ``expect_body``: conditions that must all hold, each exactly one of
  ``contains`` (case-sensitive SUBSTRING: ``contains: healthy`` also matches ``"unhealthy"``; prefer
  ``jsonpath``), ``not_contains``, ``regex`` (Python ``re.search``) or ``jsonpath``
  (``$.status == "healthy"``, see ``jsonpath.py`` for the subset).
- ``warn_ms`` (1000) / ``critical_ms`` (none): response time thresholds, status line to body end.
- ``verify_tls`` (true): with false a self-signed certificate is accepted but its expiry is still read.
- ``cert_warn_days`` / ``cert_critical_days``: days before expiry (default the task's, 30 / 7).
- ``retries`` (0) and ``retry_delay`` (0.5 s): a critical observation is retried before it counts.

Response bodies are read whole (health endpoints are small). Why aiohttp and not httpx: measured on
loopback, 1,000 requests cost httpx/httpcore about 0.7 ms of CPU each (and its pool slows down with
many connections), aiohttp about 0.2 ms; the 1,000-target run must finish within 1 s.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from upkeep.bounds import MAX_CALL_MS, MAX_CALL_SECONDS, MAX_DAYS
from upkeep.secrets import redact_url_password

from . import jsonpath
from .base import CRITICAL, OK, WARNING, CheckEnv, CheckResult, TargetBase, ms, threshold_status, worst

if TYPE_CHECKING:  # aiohttp is imported where it is used: loading the handlers must not load it
    import aiohttp

BLOCKING = False
_STATUS_RE = re.compile(r"^(?:(\d)xx|(\d{3})-(\d{3})|(\d{3}))$", re.I)
USER_AGENT = "upkeep-health"


class BodyCondition(BaseModel):
    """Exactly one of ``contains``, ``not_contains``, ``regex``, ``jsonpath``."""

    model_config = ConfigDict(extra="forbid")

    contains: str | None = Field(None, description="Substring (case-sensitive); 'healthy' matches 'unhealthy'.")
    not_contains: str | None = Field(None, description="Substring that must not occur.")
    regex: str | None = Field(None, description="Python regular expression searched in the body.")
    jsonpath: str | None = Field(None, description='JSONPath comparison, e.g. $.status == "healthy".')

    @model_validator(mode="after")
    def _one(self) -> BodyCondition:
        given = [k for k in ("contains", "not_contains", "regex", "jsonpath") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a body condition has exactly one of contains, not_contains, regex, jsonpath")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.regex!r}: {exc}") from None
        if self.jsonpath is not None:
            jsonpath.parse(self.jsonpath)
        return self

    def evaluate(self, text: str, document: Any) -> tuple[bool, str]:
        if self.contains is not None:
            return self.contains in text, f"body does not contain {self.contains!r}"
        if self.not_contains is not None:
            return self.not_contains not in text, f"body contains {self.not_contains!r}"
        if self.regex is not None:
            return re.search(self.regex, text) is not None, f"body does not match /{self.regex}/"
        if document is _NOT_JSON:
            return False, f"body is not JSON (needed for {self.jsonpath})"
        return jsonpath.parse(self.jsonpath or "$").evaluate(document)


_NOT_JSON = object()


class HttpTarget(TargetBase):
    type: Literal["http"]
    url: str = Field(description="http:// or https:// URL.")
    method: str = Field("GET", description="HTTP method.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    follow_redirects: bool = Field(False, description="Follow 3xx redirects.")
    expect_status: list[Annotated[int, Field(ge=100, le=599)] | str] = Field(
        default_factory=lambda: ["2xx"], description='Accepted status codes: 200, "2xx", "200-399".'
    )
    expect_body: list[BodyCondition] = Field(default_factory=list, description="Body conditions (all must hold).")
    warn_ms: float | None = Field(1000.0, ge=0, le=MAX_CALL_MS, description="Response time warning threshold (ms).")
    critical_ms: float | None = Field(None, ge=0, le=MAX_CALL_MS, description="Response time critical threshold (ms).")
    verify_tls: bool = Field(True, description="Verify the certificate chain and host name.")
    cert_warn_days: int | None = Field(None, ge=0, le=MAX_DAYS, description="Warn this many days before expiry (30).")
    cert_critical_days: int | None = Field(
        None, ge=0, le=MAX_DAYS, description="Critical this many days before expiry (7)."
    )
    retries: int = Field(0, ge=0, le=10, description="Extra attempts after a critical observation.")
    retry_delay: float = Field(0.5, ge=0, le=MAX_CALL_SECONDS, description="Seconds between attempts.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, values: list[int | str]) -> list[int | str]:
        for value in values:
            if isinstance(value, str) and not _STATUS_RE.match(value.strip()):
                raise ValueError(f"{value!r} is not a status code, class (2xx) or range (200-299)")
        return values

    def default_name(self) -> str:
        return f"http:{redact_url_password(self.url)}"

    def status_accepted(self, code: int) -> bool:
        return any(_status_matches(spec, code) for spec in self.expect_status)


def _status_matches(spec: int | str, code: int) -> bool:
    if isinstance(spec, int):
        return code == spec
    match = _STATUS_RE.match(spec.strip())
    assert match is not None
    klass, low, high, exact = match.groups()
    if klass:
        return code // 100 == int(klass)
    if exact:
        return code == int(exact)
    return int(low) <= code <= int(high)


class HttpClients:
    """One aiohttp session shared by all HTTP checks of a run (connection reuse per host)."""

    def __init__(self, concurrency: int = 100) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._concurrency = concurrency
        self._contexts: dict[bool, ssl.SSLContext] = {}
        self.certs: dict[tuple[str, int], asyncio.Future] = {}

    def context(self, verify: bool) -> ssl.SSLContext:
        if verify not in self._contexts:
            context = ssl.create_default_context()
            if not verify:  # accept any certificate, but the handshake still gives us the peer's
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._contexts[verify] = context
        return self._contexts[verify]

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=self._concurrency, limit_per_host=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, headers={"User-Agent": USER_AGENT}
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _clients(env: CheckEnv) -> HttpClients:
    if "http" not in env.shared:
        env.shared["http"] = HttpClients(env.concurrency)
    return env.shared["http"]


async def check(target: HttpTarget, env: CheckEnv) -> CheckResult:
    name = target.name or target.default_name()
    result = await _attempt(target, env, name)
    for _ in range(target.retries):
        if result.status != CRITICAL:
            break
        await asyncio.sleep(target.retry_delay)
        result = await _attempt(target, env, name)
    return result


async def _fetch(target: HttpTarget, clients: HttpClients, timeout: float) -> tuple[int, bytes, str]:
    """``(status, body, charset)`` of one request."""
    import aiohttp

    async with clients.session().request(
        target.method.upper(),
        target.url,
        headers=target.headers,
        timeout=aiohttp.ClientTimeout(total=timeout),
        allow_redirects=target.follow_redirects,
        ssl=clients.context(target.verify_tls) if target.url[:6].lower() == "https:" else True,
    ) as response:
        body = await response.read()
        return response.status, body, response.charset or "utf-8"


async def _peer_not_after(url: str, clients: HttpClients, timeout: float) -> datetime | None:
    """The certificate expiry of an https URL's server, read once per host and port per run.

    A separate handshake without verification, so that the expiry of a self-signed or otherwise
    untrusted certificate is known too (also when the server answers an error status).
    """
    parsed = urlsplit(url)
    if parsed.scheme != "https" or not parsed.hostname:
        return None
    key = (parsed.hostname, parsed.port or 443)
    if key not in clients.certs:
        clients.certs[key] = asyncio.ensure_future(_read_not_after(key[0], key[1], clients, timeout))
    try:
        return await asyncio.shield(clients.certs[key])
    except (OSError, TimeoutError, ValueError):
        return None


async def _read_not_after(host: str, port: int, clients: HttpClients, timeout: float) -> datetime | None:
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=clients.context(False), server_hostname=host), timeout
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.close()
    return _not_after(der) if der else None


async def _attempt(target: HttpTarget, env: CheckEnv, name: str) -> CheckResult:
    import aiohttp

    timeout = env.timeout_for(target)
    shown_url = redact_url_password(target.url)
    started = time.perf_counter()
    try:
        code, body, charset = await _fetch(target, _clients(env), timeout)
    except TimeoutError:
        return CheckResult(
            name, "http", CRITICAL, f"timed out after {timeout:g}s ({shown_url})", ms(time.perf_counter() - started)
        )
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return CheckResult(name, "http", CRITICAL, _connect_error(exc, shown_url), ms(time.perf_counter() - started))
    latency = ms(time.perf_counter() - started)
    data: dict[str, Any] = {"http_status": code, "url": shown_url}
    statuses = []
    problems = []
    if target.status_accepted(code):
        statuses.append(OK)
    else:
        statuses.append(CRITICAL)
        accepted = ", ".join(str(s) for s in target.expect_status)
        problems.append(f"expected {accepted}")
    if target.expect_body:
        text = body.decode(charset, errors="replace")
        document: Any = _NOT_JSON
        if any(c.jsonpath is not None for c in target.expect_body):
            try:
                document = json.loads(body)
            except ValueError:
                document = _NOT_JSON
        for condition in target.expect_body:
            passed, why = condition.evaluate(text, document)
            if not passed:
                statuses.append(CRITICAL)
                problems.append(f"body: {why}")
    timing = threshold_status(latency, target.warn_ms, target.critical_ms)
    if timing != OK:
        statuses.append(timing)
        limit = target.critical_ms if timing == CRITICAL else target.warn_ms
        problems.append(f"slow: {latency:.0f} ms >= {limit:g} ms")
    not_after = await _peer_not_after(target.url, _clients(env), timeout)
    if not_after is not None:
        cert_status, cert_text, days_left = _cert_status(not_after, target, env)
        data["cert_days_left"] = days_left
        data["cert_not_after"] = not_after.isoformat()
        statuses.append(cert_status)
        if cert_status != OK:
            problems.append(cert_text)
    status = worst(statuses)
    detail = f"HTTP {code} in {latency:.0f} ms"
    if problems:
        detail = f"HTTP {code}: " + "; ".join(problems)
    return CheckResult(name, "http", status, detail, latency, data)


def _connect_error(exc: BaseException, url: str) -> str:
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = getattr(exc.certificate_error, "verify_message", None) or str(exc.certificate_error)
        return (
            f"TLS verification failed for {url}: {reason} (set verify_tls: false to accept a self-signed "
            "certificate; its expiry is still checked)"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {url}: {exc.os_error.strerror or exc.os_error}"
    text = str(exc) or type(exc).__name__
    return f"request to {url} failed: {text}"


def _not_after(der: bytes) -> datetime:
    from cryptography import x509

    return x509.load_der_x509_certificate(der).not_valid_after_utc.astimezone(UTC)


def _cert_status(not_after: datetime, target: HttpTarget, env: CheckEnv) -> tuple[str, str, float]:
    warn_days = target.cert_warn_days if target.cert_warn_days is not None else env.cert_warn_days
    critical_days = target.cert_critical_days if target.cert_critical_days is not None else env.cert_critical_days
    days_left = round((not_after - env.now).total_seconds() / 86400, 2)
    when = not_after.strftime("%Y-%m-%d")
    if days_left <= 0:
        return CRITICAL, f"certificate expired on {when}", days_left
    if days_left <= critical_days:
        return CRITICAL, f"certificate expires in {days_left:.1f} days ({when})", days_left
    if days_left <= warn_days:
        return WARNING, f"certificate expires in {days_left:.1f} days ({when})", days_left
    return OK, "", days_left
