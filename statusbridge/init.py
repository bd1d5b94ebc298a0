"""``statusbridge init``: a config written from what Pingdom and Cachet already hold.

It lists the Pingdom checks and the Cachet components and metrics (with progress while
it pages), matches them by name (:func:`match`, no IO), optionally creates the metrics a
check lacks (``--create-missing``: average metrics whose threshold is the check's
resolution), and prints a commented TOML config (:func:`render`) or writes it with
``--out``. What it could not match is said on stderr and left commented in the file.
Tokens are never written: they come from the command line or the environment and go
into the config through ``STATUSBRIDGE_PINGDOM__TOKEN`` / ``STATUSBRIDGE_CACHET__TOKEN``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

import httpx
from pydantic import SecretStr
from tqdm import tqdm

from statusbridge.config import CachetSettings, PingdomSettings
from statusbridge.pingdom_cachet.cachet import CachetClient, Component, Metric, MetricSpec
from statusbridge.pingdom_cachet.pingdom import Check, PingdomClient

_UPTIME_WORDS = ("uptime", "availability", "available", "up time")
_RESPONSE_WORDS = ("response", "latency", "speed", "time")
T = TypeVar("T")


@dataclass
class Planned:
    """One Pingdom check and what it was matched with (None: nothing found)."""

    check: Check
    component: Component | None = None
    response_time: Metric | None = None
    uptime: Metric | None = None
    created: list[Metric] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        """Whether anything in Cachet belongs to this check."""
        return any((self.component, self.response_time, self.uptime))


@dataclass(frozen=True)
class InitOptions:
    """What ``statusbridge init`` was given."""

    pingdom_url: str
    pingdom_token: SecretStr
    cachet_url: str
    cachet_token: SecretStr
    cachet_api_version: Literal["auto", "2.3", "2.4", "3"] = "auto"
    out: Path | None = None
    create_missing: bool = False
    dry_run: bool = False


def words(name: str) -> str:
    """A name reduced to lower-case words, for matching."""
    return " ".join(re.findall(r"[a-z0-9]+", name.lower()))


def match(
    checks: Sequence[Check], components: Sequence[Component], metrics: Sequence[Metric]
) -> list[Planned]:
    """Match each check with the component of the same name and the metrics named after it.

    A component matches when its words equal the check's (or, failing that, when one
    name contains the other and nothing else does). A metric belongs to a check when
    its name contains the check's (or its component's) name; it is the uptime metric
    when it says uptime/availability or its suffix is ``%``, else the response-time one.
    Anything ambiguous stays unmatched.
    """
    plans = []
    for check in checks:
        name = words(check.name)
        component = _unique(c for c in components if words(c.name) == name) or _unique(
            c for c in components if name and (name in words(c.name) or words(c.name) in name)
        )
        names = {n for n in (name, words(component.name) if component else "") if n}
        own = [m for m in metrics if any(n in words(m.name) for n in names)]
        uptime = _unique(m for m in own if _is_uptime(m))
        response = _unique(m for m in own if not _is_uptime(m) and _is_response_time(m))
        plans.append(Planned(check, component, response, uptime))
    return plans


def _unique(items: Iterable[T]) -> T | None:
    found = list(items)
    return found[0] if len(found) == 1 else None


def _is_uptime(metric: Metric) -> bool:
    return metric.suffix.strip() == "%" or any(w in words(metric.name) for w in _UPTIME_WORDS)


def _is_response_time(metric: Metric) -> bool:
    suffix = metric.suffix.strip().lower()
    return suffix in ("ms", "s", "sec") or any(w in words(metric.name) for w in _RESPONSE_WORDS)


def specs_for(check: Check) -> tuple[MetricSpec, MetricSpec]:
    """The response-time and uptime metrics ``--create-missing`` creates for ``check``.

    The threshold (minutes per point, dividing 60) is the check's resolution, so each
    point holds at least one test.
    """
    resolution = check.resolution_min or 1
    threshold = resolution if resolution > 0 and 60 % resolution == 0 else 5
    label = check.name or f"check {check.id}"
    return (
        MetricSpec(
            f"{label} response time",
            "ms",
            threshold,
            places=0,
            description=f"Pingdom check {check.id}: mean response time of up results",
        ),
        MetricSpec(
            f"{label} uptime",
            "%",
            threshold,
            places=2,
            description=f"Pingdom check {check.id}: share of time up",
        ),
    )


def render(
    plans: Sequence[Planned],
    *,
    pingdom_url: str,
    cachet_url: str,
    api_version: str,
    counts: tuple[int, int],
    now: datetime | None = None,
) -> str:
    """The commented TOML config for ``plans``."""
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    components, metrics = counts
    lines = [
        f"# statusbridge configuration written by `statusbridge init` on {when}.",
        f"# Pingdom: {len(plans)} checks; Cachet (API {api_version}): {components} components, "
        f"{metrics} metrics.",
        "# Tokens are not written here: set STATUSBRIDGE_PINGDOM__TOKEN and",
        '# STATUSBRIDGE_CACHET__TOKEN (or add token = "..." below). Every key is described',
        "# in config/statusbridge.example.toml and docs/statusbridge.md.",
        "",
        'state_path = "statusbridge.sqlite3"',
        "",
        "[pingdom]",
        f"base_url = {_string(pingdom_url)}",
        "",
        "[cachet]",
        f"base_url = {_string(cachet_url)}",
        f'api_version = "{api_version}"  # found by init; "auto" probes at every start',
    ]
    if api_version == "3":
        lines.append('timezone = "UTC"  # the Cachet server\'s APP_TIMEZONE: its answers use it')
    for plan in plans:
        lines += ["", *_check_block(plan)]
    return "\n".join(lines) + "\n"


def _check_block(plan: Planned) -> list[str]:
    check = plan.check
    paused = " (paused in Pingdom)" if check.status == "paused" else ""
    body = [
        "[[checks]]",
        f"pingdom_check_id = {check.id}",
        f"name = {_string(check.name or str(check.id))}",
    ]
    for key, item, kind in (
        ("cachet_component_id", plan.component, "component"),
        ("response_time_metric_id", plan.response_time, "metric"),
        ("uptime_metric_id", plan.uptime, "metric"),
    ):
        if item is None:
            body.append(f"# {key} =  # no {kind} in Cachet matched {check.name!r}")
            continue
        note = f"{kind} {item.name!r}"
        if isinstance(item, Metric):
            note += f", threshold {item.threshold} min"
            if item in plan.created:
                note += ", created by init"
        body.append(f"{key} = {item.id}  # {note}")
    if plan.component is not None:
        body += [
            "incidents = false                # true: an incident while the component is down",
            "notify_on_status_change = false  # component status changes mail nobody",
        ]
    if plan.matched:
        return ([f"# Pingdom check {check.id} is paused."] if paused else []) + body
    return [
        f"# Pingdom check {check.id} {check.name!r}{paused} matched nothing in Cachet; create its",
        "# metrics with --create-missing, or fill in the ids and uncomment:",
        *(line if line.startswith("#") else f"# {line}" for line in body),
    ]


def _string(value: str) -> str:
    # TOML's basic strings accept JSON's escapes.
    return json.dumps(value, ensure_ascii=False)


async def _listed(items: AsyncIterator[T], what: str) -> list[T]:
    """Every item, with a progress bar on stderr while the pages come in."""
    found: list[T] = []
    with tqdm(desc=what, unit=" items", file=sys.stderr, leave=False) as bar:
        async for item in items:
            found.append(item)
            bar.update(1)
    return found


async def run_init(
    options: InitOptions, http: httpx.AsyncClient, *, say: Callable[[str], None]
) -> int:
    """List, match, create what is missing if asked, then print or write the config."""
    pingdom = PingdomClient(
        http, PingdomSettings(base_url=options.pingdom_url, token=options.pingdom_token)
    )
    cachet = CachetClient(
        http,
        CachetSettings(
            base_url=options.cachet_url,
            token=options.cachet_token,
            api_version=options.cachet_api_version,
        ),
    )
    with tqdm(desc="Pingdom checks", total=1, file=sys.stderr, leave=False) as bar:
        checks = await pingdom.checks()
        bar.update(1)
    components = await _listed(cachet.components(), "Cachet components")
    metrics = await _listed(cachet.metrics(), "Cachet metrics")
    api = await cachet.api()
    plans = match(checks, components, metrics)
    if options.create_missing:
        plans = [await _create_missing(cachet, plan, options.dry_run, say) for plan in plans]
    text = render(
        plans,
        pingdom_url=options.pingdom_url,
        cachet_url=options.cachet_url,
        api_version=api.version,
        counts=(len(components), len(metrics)),
    )
    _summarise(plans, components, say)
    if options.out is None:
        sys.stdout.write(text)
    else:
        options.out.write_text(text, encoding="utf-8")
        say(f"config written to {options.out}")
    return 0


async def _create_missing(
    cachet: CachetClient, plan: Planned, dry_run: bool, say: Callable[[str], None]
) -> Planned:
    response_spec, uptime_spec = specs_for(plan.check)
    made: dict[str, Metric] = {}
    for role, spec in (("response_time", response_spec), ("uptime", uptime_spec)):
        if getattr(plan, role) is not None:
            continue
        if dry_run:
            say(f"would create metric {spec.name!r} (threshold {spec.threshold} min)")
            continue
        metric = await cachet.create_metric(spec)
        say(f"created metric {metric.id} {metric.name!r} (threshold {spec.threshold} min)")
        made[role] = metric
    return Planned(
        plan.check,
        plan.component,
        made.get("response_time", plan.response_time),
        made.get("uptime", plan.uptime),
        list(made.values()),
    )


def _summarise(
    plans: Sequence[Planned], components: Sequence[Component], say: Callable[[str], None]
) -> None:
    matched = [p for p in plans if p.matched]
    say(f"{len(matched)} of {len(plans)} Pingdom checks matched something in Cachet")
    for plan in plans:
        missing = [
            what
            for what, item in (
                ("component", plan.component),
                ("response-time metric", plan.response_time),
                ("uptime metric", plan.uptime),
            )
            if item is None
        ]
        if missing:
            say(f"check {plan.check.id} {plan.check.name!r}: no {', no '.join(missing)} matched")
    used = {p.component.id for p in plans if p.component is not None}
    for component in components:
        if component.id not in used:
            say(f"component {component.id} {component.name!r}: no Pingdom check matched it")
