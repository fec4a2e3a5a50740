"""diag-collector configuration: a YAML file validated into typed models.

Every section has defaults, so an empty file (or no file) is a working loopback
collector on SQLite under ``state_dir``. Unknown keys are errors. A problem is reported
as ``<file>: <dotted.path>: <what was expected> (got <value>)``, one per line, and the
command exits with status 2.

>>> cfg = load_text("grpc: {listen: '127.0.0.1:6000'}\\nstate_dir: /tmp/diag")
>>> cfg.grpc.listen, cfg.store.effective_url(cfg.state_dir)
('127.0.0.1:6000', 'sqlite:////tmp/diag/collector.db')
>>> load_text("grpc: {listn: x}", "c.yaml")
Traceback (most recent call last):
...
diagconfig.ConfigError: c.yaml: grpc.listn: unknown key; did you mean 'listen'?
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from collector.cli.secret_files import resolve_secret_files
from collector.desk.config import DeskConfig
from collector.desk.followup import SurveyConfig
from collector.emergency.config import EmergencyConfig
from collector.ingest.enrolment import AgentEndpoint, agent_endpoint, is_wildcard
from collector.records.schedule import RecordsConfig
from collector.store.retention import RetentionPolicy
from diagconfig import ConfigError, ConfigIssue, issues_from, parse_yaml, read_config_file, show_value

__all__ = [
    "CollectorConfig",
    "ConfigError",
    "ConfigIssue",
    "GrpcConfig",
    "HttpConfig",
    "InspectionsConfig",
    "RetentionConfig",
    "StoreConfig",
    "TLSConfig",
    "load_config",
    "load_config_or_exit",
    "load_text",
    "parse_listen",
]

DEFAULT_STATE_DIR = Path("/var/lib/diag-collector")
MIB = 1024 * 1024

_LISTEN_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]*):(\d{1,5})$")
_SECRET_PART = re.compile(r"(token|password|secret|key_file|url)", re.IGNORECASE)


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port``); port 0 lets the OS choose.

    >>> parse_listen("127.0.0.1:50051"), parse_listen("[::1]:0")
    (('127.0.0.1', 50051), ('::1', 0))
    """
    match = _LISTEN_RE.match(value)
    if not match or int(match.group(2)) > 65535:
        raise ValueError("expected host:port with a port 0-65535, e.g. 127.0.0.1:50051")
    return match.group(1).strip("[]"), int(match.group(2))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _listen(value: str) -> str:
    parse_listen(value)
    return value


class TLSConfig(_Model):
    """TLS for the gRPC listener; mTLS when ``client_ca_file`` is given."""

    cert_file: Path
    """Server certificate chain (PEM)."""
    key_file: Path
    """Server private key (PEM)."""
    client_ca_file: Path | None = None
    """CA that signs agent certificates: agents must then present one (mTLS)."""


class GrpcConfig(_Model):
    """The agents' side: one bidirectional stream per agent."""

    listen: str = "127.0.0.1:50051"
    """Address to listen on; loopback unless you mean otherwise."""
    tls: TLSConfig | None = None
    max_message_bytes: int = Field(default=4 * MIB, ge=64 * 1024, le=256 * MIB)
    """Largest message accepted from an agent; bigger ones get RESOURCE_EXHAUSTED."""
    max_batch_entries: int = Field(default=1000, ge=1, le=100_000)
    """Most entries in one batch (told to the agent in Welcome)."""
    rate_limit_entries_per_s: float = Field(default=5000.0, gt=0)
    """Sustained entries per second per agent."""
    rate_limit_burst: int = Field(default=20_000, ge=1)
    """Entries an agent may send at once above the sustained rate (e.g. a backlog)."""
    rate_limit_bytes_per_s: int = Field(default=2 * MIB, ge=64 * 1024)
    """Sustained message bytes per second per agent (batches, gap reports, everything)."""
    rate_limit_bytes_burst: int = Field(default=16 * MIB, ge=64 * 1024)
    """Bytes an agent may send at once above the sustained rate (at least one largest message)."""
    max_clock_skew_s: float = Field(default=300.0, ge=1.0, le=7 * 86400.0)
    """How far ahead of the collector's clock an agent's timestamps may run; beyond it the
    entry is stored at its arrival time and the agent's clock skew is a health problem."""
    heartbeat_interval_s: int = Field(default=30, ge=1, le=3600)
    public_address: str | None = None
    """host:port agents connect to, handed out at enrolment (default: the listen address,
    which must then not be a wildcard such as 0.0.0.0)."""
    public_server_name: str | None = None
    """With TLS: the name agents verify in the collector's certificate, when it differs
    from public_address's host."""

    _v_listen = field_validator("listen")(_listen)

    @field_validator("public_address")
    @classmethod
    def _reachable(cls, value: str | None) -> str | None:
        if value is None:
            return value
        host, port = parse_listen(value)
        if is_wildcard(host) or port == 0:
            raise ValueError(
                "expected the host:port agents connect to (e.g. collector.example.com:50051), "
                "not a wildcard address or port 0"
            )
        return value

    def agent_endpoint(self, bound_port: int | None = None) -> AgentEndpoint:
        """What enrolment tells agents (see :mod:`collector.ingest.enrolment`)."""
        return agent_endpoint(
            self.listen,
            self.public_address,
            tls=self.tls is not None,
            server_name=self.public_server_name,
            bound_port=bound_port,
        )


class HttpConfig(_Model):
    """The people's side: JSON API, /metrics, /healthz."""

    listen: str = "127.0.0.1:8080"

    _v_listen = field_validator("listen")(_listen)


class RetentionConfig(_Model):
    """How long each kind of data is kept (days)."""

    raw_points_days: float = Field(default=14.0, gt=0)
    """Raw metric points; older ones are rolled up into 5-minute min/max/avg/count."""
    rollup_days: float = Field(default=400.0, gt=0)
    results_days: float = Field(default=90.0, gt=0)
    health_days: float = Field(default=14.0, gt=0)
    gaps_days: float = Field(default=365.0, gt=0)
    rollup_resolution_s: int = Field(default=300, ge=60, le=86_400)
    interval_s: float = Field(default=3600.0, ge=60)
    """How often the collector applies retention."""

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            raw_points_days=self.raw_points_days,
            rollup_days=self.rollup_days,
            results_days=self.results_days,
            health_days=self.health_days,
            gaps_days=self.gaps_days,
            rollup_resolution_s=self.rollup_resolution_s,
        )


class StoreConfig(_Model):
    """Where results are stored."""

    url: str | None = None
    """``sqlite:///path.db`` or ``postgresql+psycopg://user@host/db``; default: SQLite in state_dir."""
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """NORMAL survives a collector crash; FULL also survives power loss (slower commits)."""
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(
            ("sqlite:///", "postgresql+psycopg://", "postgresql://")
        ):
            raise ValueError("expected sqlite:///path/to/collector.db or postgresql+psycopg://user@host/db")
        return value

    def effective_url(self, state_dir: Path) -> str:
        return self.url or f"sqlite:///{state_dir / 'collector.db'}"


class InspectionsConfig(_Model):
    """Scheduled inspections (定期巡检) and their reports: see docs/collector.md."""

    plans_dir: Path | None = None
    """Directory of inspection plan files (``*.yaml``); default: ``<state_dir>/plans``."""
    reports_dir: Path | None = None
    """Also write every stored report here as a file (reports are always kept in the store)."""
    tick_s: float = Field(default=30.0, gt=0, le=3600)
    """How often the scheduler looks for due plans."""
    poll_s: float = Field(default=2.0, gt=0, le=60)
    """How often a run looks in the store for hosts' answers while it waits."""
    history_days: float = Field(default=30.0, gt=0, le=400)
    """Metric history a plan's first run reads (later runs read since the previous run)."""
    pdf: bool = False
    """Render the PDF when a run finishes (else on the first download)."""
    prepared_by: str = "remote-diag"
    """The sign-off block's "prepared by" line."""
    organisation: str | None = None
    """The vendor's name above the signatures."""

    def plans_path(self, state_dir: Path) -> Path:
        return self.plans_dir if self.plans_dir is not None else state_dir / "plans"


class CollectorConfig(_Model):
    grpc: GrpcConfig = Field(default_factory=GrpcConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    state_dir: Path = DEFAULT_STATE_DIR
    """Holds the default SQLite store."""
    emergency: EmergencyConfig = Field(default_factory=EmergencyConfig)
    """Detection, incidents, emergency cases, maintenance windows, notifications."""
    inspections: InspectionsConfig = Field(default_factory=InspectionsConfig)
    records: RecordsConfig = Field(default_factory=RecordsConfig)
    """Scheduled service-operation analyses (collector.records.schedule)."""
    surveys: SurveyConfig = Field(default_factory=SurveyConfig)
    """The follow-up step: satisfaction survey links and callbacks (collector.desk.followup)."""
    desk: DeskConfig = Field(default_factory=DeskConfig)
    """The service desk: the SLA sweep and customers' calendar files."""

    @model_validator(mode="after")
    def _distinct_listeners(self) -> CollectorConfig:
        if self.grpc.listen == self.http.listen and not self.grpc.listen.endswith(":0"):
            raise ValueError("grpc.listen and http.listen must differ")
        return self

    @property
    def store_url(self) -> str:
        return self.store.effective_url(self.state_dir)


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> CollectorConfig:
    """Read and validate ``path`` (None: defaults only), then apply ``overrides``.

    ``overrides`` uses dotted paths, as the ``serve`` flags do:
    ``{"grpc.listen": "127.0.0.1:0", "store.url": "sqlite:///x.db"}``. Raises ConfigError.
    """
    if path is None:
        return load_text("", "<defaults>", overrides)
    return load_text(read_config_file(path), str(path), overrides)


def load_text(
    text: str, source: str = "<config>", overrides: dict[str, Any] | None = None
) -> CollectorConfig:
    # A duplicate key is an error, as in the agent's config: silently keeping the last
    # value hides mistakes such as two `listen:` lines.
    raw = parse_yaml(text, source)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            source, [ConfigIssue("", "expected a mapping of sections at the top level", show_value(raw))]
        )
    raw = resolve_secret_files(raw, source)  # store.url_file: ... and the other *_file secrets
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.get(part)
            node[part] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[leaf] = value
    try:
        return CollectorConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            source, issues_from(exc, CollectorConfig, secret=_SECRET_PART, show_unknown_value=False)
        ) from None


def load_config_or_exit(path: str | Path | None, overrides: dict[str, Any] | None = None) -> CollectorConfig:
    """:func:`load_config` for commands: problems go to stderr and the process exits 2."""
    try:
        return load_config(path, overrides)
    except ConfigError as exc:
        _exit(str(exc))


def _exit(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(2)
