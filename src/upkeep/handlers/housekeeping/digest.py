"""``report.send``: the scheduled digest (day, week or month), sent through the alert channels.

The digest (``upkeep.reports``, asked of ``ctx.services``) holds what ran, what failed, health, backups
and their verification, and capacity warnings. Messages go out through ``channels`` (names under
``channels:`` in upkeep.yaml, sent by ``upkeep.notify.channels`` over apprise: mail, Slack,
webhooks...) as markdown text; the HTML version
with its charts is written to ``<data_dir>/reports/<period>-<date>.html`` when ``save_html`` is true.

``dry_run`` builds and renders the digest but sends nothing. A channel that refuses the message is a
warning finding; when every channel refuses it the run fails (the report was not delivered).
``only_on_problems`` sends nothing for an all-ok period.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from upkeep.engine.context import RunContext
from upkeep.engine.registry import HandlerConfig, handler, overridable
from upkeep.errors import ConfigError, UserError
from upkeep.private import PRIVATE

ADJECTIVE = {"day": "daily", "week": "weekly", "month": "monthly"}
NOTIFY_TYPE = {"ok": "success", "warning": "warning", "critical": "failure"}


class ReportSendConfig(HandlerConfig):
    """Which digest, where to send it."""

    period: Literal["day", "week", "month"] = overridable("week", description="Period the digest covers.")
    channels: list[str] = Field(..., min_length=1, description="Channel names (channels: in upkeep.yaml).")
    only_on_problems: bool = Field(False, description="Send nothing when the period's status is ok.")
    save_html: bool = Field(True, description="Also write the HTML report under <data_dir>/reports/.")


@handler("report.send", config=ReportSendConfig, aliases=["report.digest"])
def report_send(ctx: RunContext, config: ReportSendConfig) -> dict:
    """Build the day/week/month digest and send it through the alert channels."""
    if ctx.services is None:
        raise ConfigError("report.send needs the engine's services (run it as an upkeep task)")
    now = ctx.now()
    digest = ctx.services.digest(config.period, now)
    body = ctx.services.render_digest(digest, "markdown")
    title = f"[upkeep] {ADJECTIVE[config.period]} report: {digest['status'].upper()}"
    result = {
        "period": config.period,
        "status": digest["status"],
        "title": title,
        "channels": config.channels,
        "runs": digest["runs"]["total"],
        "failed": digest["runs"]["failed_count"],
    }
    if config.save_html:
        path = Path(ctx.data_dir) / "reports" / f"{config.period}-{now:%Y-%m-%d}.html"
        if not ctx.dry_run:
            PRIVATE.mkdir(path.parent)
            PRIVATE.write(path, ctx.services.render_digest(digest, "html"))
        result["html_path"] = str(path)
    if config.only_on_problems and digest["status"] == "ok":
        return {**result, "outcome": "ok", "summary": f"{ADJECTIVE[config.period]} report all ok: not sent", "sent": []}
    if ctx.dry_run:
        for name in config.channels:
            ctx.info("plan", f"would send {title!r} to channel {name}", action="send", channel=name)
        return {
            **result,
            "outcome": "ok",
            "summary": f"dry run: would send {title!r} to {', '.join(config.channels)}",
            "sent": [],
            "body": body,
        }
    sent, findings = [], []
    for name in config.channels:
        ctx.check_cancelled()
        try:
            ctx.services.send_to_channel(name, title, body, NOTIFY_TYPE.get(digest["status"], "info"))
        except UserError as exc:
            findings.append({"severity": "warning", "item": name, "message": str(exc)})
            ctx.warning("send_failed", str(exc), channel=name)
            continue
        sent.append(name)
        ctx.info("sent", f"report sent to {name}", channel=name)
    if not sent:
        raise UserError(
            f"the {ADJECTIVE[config.period]} report reached no channel: " + "; ".join(f["message"] for f in findings),
            hint="check the channels with `upkeep notify test NAME`",
        )
    return {
        **result,
        "outcome": "warning" if findings else "ok",
        "sent": sent,
        "findings": findings,
        "summary": f"{ADJECTIVE[config.period]} report ({digest['status']}) sent to {', '.join(sent)}"
        + (f"; {len(findings)} channel(s) failed" if findings else ""),
    }
