"""The one Settings object, built at start-up from a TOML file and ``AUXILIO_*`` variables.

Precedence, highest first: explicit overrides (CLI flags), environment, the TOML file, defaults.
Nothing here runs at import time; ``load_settings`` is called by the CLI and by tests.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUXILIO_", extra="forbid", frozen=True)

    data_dir: Path = Path("auxilio-data")
    database_url: str = Field(
        default="",
        description="SQLAlchemy async URL; empty means SQLite in the data directory",
    )
    bus: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    node_id: str = "node-1"

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    public_url: str = ""

    log_json: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Bodies larger than this are refused with 413 before they are parsed.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Connection timeouts (server/serving.py): a request's headers must arrive within
    # `http_header_timeout_seconds` of its first byte (or of the connection); an idle keep-alive
    # connection is closed after `http_keep_alive_seconds`; WebSockets are pinged every
    # `ws_ping_interval_seconds` and closed when a pong takes longer than `ws_ping_timeout_seconds`.
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_keep_alive_seconds: int = Field(default=5, ge=1)
    # A request body that stops arriving for this long is answered 408 (server/middleware.py).
    http_body_idle_seconds: float = Field(default=30.0, gt=0)
    ws_ping_interval_seconds: float = Field(default=20.0, gt=0)
    ws_ping_timeout_seconds: float = Field(default=20.0, gt=0)
    # Serve the interactive API docs at /docs (Swagger UI from local files) and /openapi.json.
    api_docs: bool = True

    audit_checkpoint_every: int = Field(default=1000, ge=1)
    audit_checkpoint_seconds: float = Field(default=60.0, gt=0)
    # Where each checkpoint is also appended, outside the database (server/audit/witness.py);
    # unset means <data_dir>/witness. Put it on another volume than the database.
    audit_witness_dir: Path | None = None
    # The single-file agents the join page serves (scripts/build-agent's output, named
    # auxilio-agent-<os>-<arch>, LICENSES.txt beside them); unset means <data_dir>/agent-builds.
    agent_builds_dir: Path | None = None

    # Lockout: after `lockout_threshold` failures, each further failure doubles the wait,
    # starting at `lockout_base_seconds` and capped at `lockout_max_seconds`.
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_base_seconds: float = Field(default=30.0, gt=0)
    lockout_max_seconds: float = Field(default=3600.0, gt=0)
    # A counter quiet for this long starts again from zero (never sooner than the longest wait).
    lockout_forget_seconds: float = Field(default=86400.0, gt=0)

    # Token buckets against guessing (identity/ratelimit.py): each holds N attempts and refills
    # at N a minute, per client address and node-wide. Over the limit: 429 / a WS error.
    rate_join_per_address_per_minute: float = Field(default=10.0, gt=0)
    rate_join_global_per_minute: float = Field(default=600.0, gt=0)
    rate_login_per_address_per_minute: float = Field(default=30.0, gt=0)
    rate_login_global_per_minute: float = Field(default=1200.0, gt=0)
    rate_ws_per_address_per_minute: float = Field(default=120.0, gt=0)
    rate_ws_global_per_minute: float = Field(default=6000.0, gt=0)
    # Addresses (or CIDR ranges) of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto
    # are believed, comma-separated; empty: forwarded headers are ignored, the peer address counts.
    trusted_proxies: str = ""

    login_token_ttl_seconds: int = Field(default=12 * 3600, ge=60)
    # Staff roles must enrol TOTP before they can log in (the policy's staff.mfa_required
    # overrides this per organisation once a policy is active).
    mfa_required_for_staff: bool = True

    # Support sessions and the relay (docs/support-sessions.md).
    # An agent that lost its connection has this long to come back before the session ends.
    agent_grace_seconds: float = Field(default=15.0, gt=0)
    # A technician whose connection dropped has this long to attach again before the session
    # ends (technician_lost); meanwhile the person is told and the join code cannot be used.
    technician_grace_seconds: float = Field(default=60.0, gt=0)
    # Per-connection send queue: the relay stops reading from a sender while its peer's queue is
    # full (backpressure), so memory per connection is bounded by these two numbers.
    relay_queue_frames: int = Field(default=64, ge=1)
    relay_queue_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    # A peer whose queue stays full this long is dropped rather than stalling its sender forever.
    relay_stuck_seconds: float = Field(default=30.0, gt=0)
    # A WebSocket must authenticate within this time (agent.auth / tech.attach).
    ws_auth_timeout_seconds: float = Field(default=10.0, gt=0)
    # How often the support-session scheduler looks for warnings, time limits and idle sessions.
    support_session_tick_seconds: float = Field(default=1.0, gt=0)
    # After the end, how long the agent's connection stays open for the technician's summary
    # (the person's report is sent again with it).
    report_wait_seconds: float = Field(default=120.0, gt=0)
    # After the last report, how long the agent may still say that it disagrees with it
    # (session.report.mismatch, audited) before its connection is closed.
    report_dispute_seconds: float = Field(default=1.0, ge=0, le=30)
    # How often tickets waiting for a technician (skill and working hours) are routed again.
    ticket_queue_seconds: float = Field(default=60.0, gt=0)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for entry in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an IP address or network (CIDR); "
                    "name each proxy, '*' is not accepted"
                ) from None
        return value

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [part.strip() for part in self.trusted_proxies.split(",") if part.strip()]

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'auxilio.db').resolve()}"

    @property
    def signing_key_path(self) -> Path:
        return self.data_dir / "keys" / "server-signing.pem"

    @property
    def audit_witness_path(self) -> Path:
        return self.audit_witness_dir or self.data_dir / "witness"

    @property
    def agent_builds_path(self) -> Path:
        return self.agent_builds_dir or self.data_dir / "agent-builds"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the Settings from a TOML file (optional), the environment and explicit overrides."""
    file_values: dict[str, Any] = {}
    if config_file is not None:
        with config_file.open("rb") as fh:
            file_values = tomllib.load(fh)
        file_values = file_values.get("auxilio", file_values)
    # The environment beats the file: read it through a Settings built without the file,
    # and keep only the fields the environment actually set.
    from_env = Settings().model_dump(exclude_unset=True)
    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**{**file_values, **from_env, **given})
