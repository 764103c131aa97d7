"""Notification channels: apprise URLs from ``upkeep.yaml`` ``channels:``, sent with a timeout.

A channel is ``{name: {url: "...", ...options}}`` (stored by ``upkeep apply`` under the records
domain ``_upkeep``, key ``channels``). The URL is any apprise URL:

- email: ``mailto://user:${env:SMTP_PASSWORD}@smtp.example.com:587?from=upkeep@example.com&to=ops@example.com``
  (``mailto://`` is plain SMTP; ``mailtos://`` uses STARTTLS on 587 or ``?mode=ssl`` for SMTPS on 465),
- Slack: ``slack://TokenA/TokenB/TokenC/#channel`` or ``${env:SLACK_URL}``,
- a generic JSON webhook: ``json://host:port/path`` (``jsons://`` for HTTPS),
- any other apprise service.

Secrets are ``${env:NAME}`` references, resolved only at send time and never logged: a reference
inside a URL is percent-encoded (so a password may contain ``@`` or ``/``); a URL that is exactly
one reference is used as is. Errors name the channel and scrub every resolved value.

Channel options besides ``url``:

- ``timeout`` (seconds, default 30): the whole send, connection included, must finish within it;
- ``default`` (bool, default false): tasks whose ``notify.channels`` is empty use default channels.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from upkeep.errors import ConfigError, NotFound, UserError
from upkeep.secrets import REF_RE, find_refs, redact_url_password, resolve, scrub
from upkeep.store.db import Store
from upkeep.store.records import CONFIG_DOMAIN, Records

log = logging.getLogger(__name__)


def _forget_apprise_pools() -> None:
    """apprise (2.x) sends through process-wide thread pools made on first use. A child forked
    afterwards (``upkeep run`` forks its worker; so does a test process) inherits the pools
    without their threads, and its first send waits on them until its timeout: it gets its own."""
    import sys

    module = sys.modules.get("apprise.apprise")
    for name in ("_shared_executor", "_coordinator_executor"):
        if module is not None and getattr(module, name, None) is not None:
            setattr(module, name, None)


os.register_at_fork(after_in_child=_forget_apprise_pools)

DEFAULT_TIMEOUT = 30.0  # seconds a send may take, per channel
NOTIFY_TYPES = ("info", "success", "warning", "failure")


class DeliveryFailed(UserError):
    """A channel did not accept a message (unreachable server, rejected login, timeout...)."""

    status_code = 502


@dataclass(frozen=True)
class Channel:
    name: str
    url: str  # the template as written, references unresolved
    timeout: float = DEFAULT_TIMEOUT
    default: bool = False

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any] | str) -> Channel:
        if isinstance(spec, str):
            spec = {"url": spec}
        url = str(spec.get("url") or "")
        if not url:
            raise ConfigError(f"channel {name!r} has no url", hint="set channels.<name>.url in upkeep.yaml")
        try:
            timeout = float(spec.get("timeout") or DEFAULT_TIMEOUT)
        except (TypeError, ValueError):
            raise ConfigError(f"channel {name!r}: timeout must be a number of seconds", field="timeout") from None
        return cls(name=name, url=url, timeout=timeout, default=bool(spec.get("default", False)))

    @property
    def display_url(self) -> str:
        """The URL safe to show: references kept, plain-text passwords hidden."""
        return redact_url_password(self.url)


def load_channels(store: Store) -> dict[str, Channel]:
    """The channels ``upkeep apply`` stored; invalid entries are logged and left out."""
    raw = Records(store, CONFIG_DOMAIN).get("channels", {}) or {}
    return channels_from(raw)


def channels_from(raw: dict[str, Any]) -> dict[str, Channel]:
    out: dict[str, Channel] = {}
    for name, spec in (raw or {}).items():
        try:
            out[name] = Channel.from_spec(name, spec)
        except ConfigError as exc:
            log.warning("ignoring channel %s: %s", name, exc)
    return out


def get_channel(store: Store, name: str) -> Channel:
    channels = load_channels(store)
    if name not in channels:
        known = ", ".join(sorted(channels)) or "none"
        raise NotFound(
            f"no channel {name!r} (known: {known})",
            hint="declare it under channels: in upkeep.yaml and run `upkeep apply`",
            field="channel",
        )
    return channels[name]


def resolve_url(template: str, environ: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """The URL with its ``${env:..}`` references resolved, and the secret values used (to scrub)."""
    env = os.environ if environ is None else environ
    secrets: list[str] = []
    if REF_RE.fullmatch(template.strip()):
        return resolve(template.strip(), env, collected=secrets), secrets
    refs = find_refs(template)
    quoted = {name: quote(env[name], safe="") for name in refs if name in env}
    url = resolve(template, quoted)  # a missing name raises ConfigError naming it
    secrets.extend(env[name] for name in refs if env.get(name))
    secrets.extend(v for v in quoted.values() if v)
    return url, secrets


def send(
    channel: Channel,
    title: str,
    body: str,
    notify_type: str = "info",
    *,
    scrub_also: list[str] | None = None,
) -> None:
    """Send one message; raise ``DeliveryFailed`` (secrets scrubbed) when the channel refuses it."""
    import apprise

    url, secrets = resolve_url(channel.url)
    secrets = secrets + list(scrub_also or [])

    def clean(text: str) -> str:
        return scrub(text, secrets)

    title, body = clean(title), clean(body)
    sender = apprise.Apprise()
    if not sender.add(url):
        raise DeliveryFailed(
            f"channel {channel.name!r}: apprise does not understand the URL {channel.display_url}",
            hint="see https://github.com/caronc/apprise/wiki for URL forms",
            field="url",
        )
    outcome: dict[str, Any] = {}

    def run() -> None:
        kind = notify_type if notify_type in NOTIFY_TYPES else "info"
        try:
            try:
                outcome["result"] = sender.notify(body=body, title=title, notify_type=kind, timeout=channel.timeout)
            except TypeError:  # apprise 1.x: no call timeout; the thread join below still bounds it
                outcome["result"] = sender.notify(body=body, title=title, notify_type=kind)
        except Exception as exc:  # apprise raising is a failed delivery, not a crash
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=run, name=f"notify-{channel.name}", daemon=True)
    thread.start()
    thread.join(channel.timeout + 5.0)
    if thread.is_alive():
        raise DeliveryFailed(f"channel {channel.name!r}: no answer within {channel.timeout:g}s")
    if "error" in outcome:
        raise DeliveryFailed(clean(f"channel {channel.name!r}: {outcome['error']}"))
    result = outcome.get("result")
    if not result:
        details = []
        try:
            details = [str(entry.message) for entry in result.logs()][-3:]
        except Exception:
            pass
        reason = "; ".join(d for d in details if d) or f"status {getattr(result, 'status', 'unknown')!s}"
        raise DeliveryFailed(clean(f"channel {channel.name!r} did not accept the message: {reason}"))
