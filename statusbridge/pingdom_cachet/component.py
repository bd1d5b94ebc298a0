"""Component status and incident automation for one check.

The status follows the newest results through
:mod:`statusbridge.pingdom_cachet.status`; Cachet gets a PUT only when it changes (and
only after a GET shows Cachet does not have it already: 2.3 mails on every PUT and needs
the component's ``enabled`` sent back). Status changes are silent where Cachet allows it
unless ``notify_on_status_change``. With ``incidents = true`` an incident opens when the
component enters major outage, linked to the component at the status it already has
(so linking mails nobody about the component), and is resolved when it leaves it,
unless a human edited or closed it meanwhile (then it is left alone and forgotten);
incidents mail subscribers as ``notify`` says. Nothing is saved before Cachet has
accepted the change, so a failed call is retried from the same results next run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import structlog

from statusbridge.config import CheckSettings
from statusbridge.exceptions import CachetError
from statusbridge.pingdom_cachet.cachet import INCIDENT_FIXED, CachetClient, Component
from statusbridge.pingdom_cachet.check_info import CheckInfo
from statusbridge.pingdom_cachet.state import CheckRecord, StateFile
from statusbridge.pingdom_cachet.status import ComponentStatus, advance
from statusbridge.pingdom_cachet.uptime import Result

log = structlog.get_logger(__name__)


async def update_component(
    check: CheckSettings,
    cachet: CachetClient,
    state_file: StateFile,
    record: CheckRecord,
    info: CheckInfo,
    results: Sequence[Result],
    dry_run: bool,
) -> None:
    """Apply new results to the status, PUT it on change, open/resolve the incident."""
    component_id = check.cachet_component_id
    assert component_id is not None
    before = record.hysteresis.status
    after = advance(
        record.hysteresis, results, down_after=check.down_after, up_after=check.up_after
    )
    if after.status is None:
        return
    pushed = record.pushed_status
    current: Component | None = None
    if pushed is None:
        # First run for this check: Cachet may already show the right status.
        current = await cachet.component(component_id)
        pushed = current.status
    if dry_run:
        if after.status != pushed:
            log.info("would_set_component_status", check=check.label, status=after.status.name)
        return
    if after.status != pushed:
        await _set_status(check, cachet, current, int(after.status))
    new = replace(record, hysteresis=after, pushed_status=int(after.status))
    if check.incidents:
        new = await _follow_incident(check, cachet, new, info, before)
    state_file.save(new)


async def _set_status(
    check: CheckSettings, cachet: CachetClient, current: Component | None, status: int
) -> None:
    """PUT the status unless Cachet shows it already (a PUT after a failed run would mail)."""
    assert check.cachet_component_id is not None
    if current is None:
        current = await cachet.component(check.cachet_component_id)
    if current.status == status:
        log.info("component_status_already_set", check=check.label, status=status)
        return
    await cachet.set_component_status(current, status, notify=check.notify_on_status_change)
    log.info(
        "component_status_set",
        check=check.label,
        component=current.id,
        status=ComponentStatus(status).name,
        previous=current.status,
        notify=check.notify_on_status_change,
    )


async def _follow_incident(
    check: CheckSettings,
    cachet: CachetClient,
    record: CheckRecord,
    info: CheckInfo,
    before: ComponentStatus | None,
) -> CheckRecord:
    now = record.hysteresis.status
    major = ComponentStatus.MAJOR_OUTAGE
    fields = {
        "component": info.component_name,
        "check_id": check.pingdom_check_id,
        "check_name": check.label,
        "since": _when(record.hysteresis.changed_at),
        "until": _when(record.hysteresis.changed_at),
    }
    if now == major and before != major and record.incident_id is None:
        assert check.cachet_component_id is not None
        incident = await cachet.create_incident(
            check.incident_name.format(**fields),
            check.incident_message.format(**fields),
            notify=check.notify,
            # The status the component has now: linking it changes (and mails) nothing.
            component=(check.cachet_component_id, int(major)),
        )
        log.info("incident_opened", check=check.label, incident=incident.id)
        return replace(record, incident_id=incident.id, incident_updated_at=incident.updated_at)
    if now != major and record.incident_id is not None:
        await _resolve(check, cachet, record, check.resolved_message.format(**fields))
        return replace(record, incident_id=None, incident_updated_at=None)
    return record


async def _resolve(
    check: CheckSettings, cachet: CachetClient, record: CheckRecord, text: str
) -> None:
    assert record.incident_id is not None
    try:
        current = await cachet.incident(record.incident_id)
    except CachetError as exc:
        if exc.status != 404:
            raise
        log.info("incident_gone", check=check.label, incident=record.incident_id)
        return
    if current.status == INCIDENT_FIXED or current.updated_at != record.incident_updated_at:
        # Someone closed or edited it: their words stand, ours are not added.
        log.info("incident_left_alone", check=check.label, incident=current.id)
        return
    try:
        await cachet.resolve_incident(current, text, notify=check.notify)
    except CachetError as exc:
        if exc.status != 404:
            raise
        # Deleted between the read and the write; the version stays what it is.
        log.info("incident_gone", check=check.label, incident=current.id)
        return
    log.info("incident_resolved", check=check.label, incident=current.id)


def _when(timestamp: int | None) -> str:
    if timestamp is None:
        return "unknown time"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")
