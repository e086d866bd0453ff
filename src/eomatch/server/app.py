"""App factory: both STAC APIs are built here from one ``Settings``.

``create_app(settings, audience)`` returns a stac-fastapi-pgstac app. The
internal audience gets transactions; the external one is built without any
transaction route (writes answer 405 from the app itself), connects with the
read-only role, and passes every response through the external href policy
(:mod:`eomatch.server.external_policy`). Both answer 3D bboxes
(:mod:`eomatch.server.client`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI

from eomatch import __version__
from eomatch.errors import first_line
from eomatch.pgstac import DbCredentials, stack_credentials
from eomatch.settings import Settings, load_settings, service_environment

Audience = Literal["internal", "external"]


def create_app(
    settings: Settings,
    audience: Audience = "internal",
    credentials: DbCredentials | None = None,
) -> FastAPI:
    """Build one of the two APIs from settings (and the role's DB credentials)."""
    from stac_fastapi.pgstac.app import instantiate_api
    from stac_fastapi.pgstac.config import PostgresSettings
    from stac_fastapi.pgstac.config import Settings as PgstacApiSettings
    from stac_fastapi.pgstac.db import close_db_connection, connect_to_db
    from stac_fastapi.pgstac.models.extensions import Extensions

    from eomatch.server.client import client_class
    from eomatch.server.errors import add_error_handlers
    from eomatch.server.external_policy import filtering_connection_getter, policy_from_settings
    from eomatch.server.health import add_health_routes
    from eomatch.server.limits import Limits, RequestLimitsMiddleware
    from eomatch.server.middleware import ExternalFilterMiddleware, RequestLogMiddleware
    from eomatch.server.schema_url import SchemaUrlMiddleware, add_schema_route

    api_cfg = settings.stack.api
    if credentials is None:
        credentials = stack_credentials(settings, "ingest" if audience == "internal" else "read")
    internal = audience == "internal"
    root_path = api_cfg.internal_root_path if internal else api_cfg.external_root_path
    title = f"{api_cfg.title} (internal)" if internal else api_cfg.title
    api_settings = PgstacApiSettings(
        root_path=root_path,
        stac_fastapi_title=title,
        stac_fastapi_description=api_cfg.description,
        stac_fastapi_landing_id=f"eomatch-{audience}",
        stac_fastapi_version=__version__,
        enable_transactions_extensions=internal,
        enabled_extensions=None,
        # Not "/api": under the internal root path "/api" Starlette would route
        # "/api/api" to the landing page (the path equal to root_path is "").
        openapi_url="/openapi.json",
        docs_url="/api.html",
        cors_methods=["GET", "POST", "OPTIONS"] if not internal else ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        cors_headers=["Content-Type", "Authorization"],
    )
    pg = PostgresSettings(
        pguser=credentials.user,
        pgpassword=credentials.password,
        pghost=credentials.host,
        pgport=credentials.port,
        pgdatabase=credentials.dbname,
        db_max_conn_size=api_cfg.db_pool_max,
    )

    policy = policy_from_settings(api_cfg.public_schemes, api_cfg.internal_path_prefixes)
    # Reads get server.statement_timeout_s on their own pool; writes keep the role's.
    pg_read = _with_statement_timeout(pg, settings.server.statement_timeout_s)
    # External: stored links with no public href go before stac-fastapi resolves them.
    get_conn = None if internal else filtering_connection_getter(policy)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await connect_to_db(app, get_conn=get_conn, postgres_settings=pg_read,
                            add_write_connection_pool=internal, write_postgres_settings=pg)
        yield
        await close_db_connection(app)

    api = instantiate_api(
        client=client_class(),
        extensions=Extensions(settings=api_settings),
        lifespan=lifespan,
        settings=api_settings,
    )
    app = api.app
    app.state.eomatch_settings = settings
    app.state.eomatch_audience = audience
    app.state.eomatch_health_dsn = credentials.dsn
    add_health_routes(app, settings, audience)
    add_schema_route(app)
    _add_db_unavailable_handler(app)
    add_error_handlers(app, settings.server.statement_timeout_s)
    _add_metrics(app)
    if not internal:
        app.add_middleware(ExternalFilterMiddleware, policy=policy)
    app.add_middleware(SchemaUrlMiddleware)  # after the filter: it sees the final body
    app.add_middleware(RequestLimitsMiddleware, limits=Limits.from_settings(settings.server))
    app.add_middleware(RequestLogMiddleware)
    return app


def _with_statement_timeout(pg: Any, timeout_s: float) -> Any:
    """``pg`` whose connections start with ``statement_timeout`` (0: the role's own)."""
    if not timeout_s:
        return pg
    from stac_fastapi.pgstac.config import ServerSettings

    server = ServerSettings(**{**pg.server_settings.model_dump(), "statement_timeout": str(max(1, round(timeout_s * 1000)))})
    return pg.model_copy(update={"server_settings": server})


def _add_db_unavailable_handler(app: FastAPI) -> None:
    """503 + Retry-After (not a 500 with a traceback) while PostgreSQL is unreachable.

    asyncpg's pool reconnects by itself once the server is back; until then every
    request that needs a connection fails fast with one warning line.
    """
    import logging

    import asyncpg
    from fastapi import Request
    from fastapi.responses import JSONResponse

    log = logging.getLogger("eomatch.server")

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable for %s %s: %s: %s", request.method, request.url.path,
                    type(exc).__name__, first_line(exc, ""))
        return JSONResponse(
            {"code": "ServiceUnavailable", "description": "the catalogue database is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    for exc_class in (
        OSError,  # connection refused / reset
        asyncpg.PostgresConnectionError,
        asyncpg.exceptions.OperatorInterventionError,  # shutting down, admin shutdown
        asyncpg.exceptions.ConnectionDoesNotExistError,
        asyncpg.exceptions.TooManyConnectionsError,
        # A connection the server dropped mid-query: asyncpg reports a broken
        # protocol state or a closed connection rather than a server error.
        asyncpg.exceptions.InternalClientError,
        asyncpg.exceptions.InterfaceError,
    ):
        app.add_exception_handler(exc_class, unavailable)


def _add_metrics(app: FastAPI) -> None:
    """Prometheus metrics at ``/metrics``: counts and latency by route and status."""
    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator, metrics

    # One registry per app: several apps in one process (tests, notebooks) each
    # count their own requests instead of colliding in the global registry.
    registry = CollectorRegistry(auto_describe=True)
    if app.state.eomatch_audience == "internal":  # each standby's state and lag
        from eomatch.server.health import add_replication_metrics

        add_replication_metrics(registry, app.state.eomatch_settings, app.state.eomatch_health_dsn)
    labels = {"should_include_handler": True, "should_include_method": True, "should_include_status": True}
    (
        Instrumentator(should_group_status_codes=False, excluded_handlers=["/metrics"], registry=registry)
        .add(metrics.requests(registry=registry, **labels))
        .add(metrics.latency(registry=registry, **labels))
        .instrument(app)
        .expose(app, endpoint="/metrics", include_in_schema=False)
    )


def _from_env(audience: Audience) -> FastAPI:
    """Entry point for uvicorn: settings from ``EOMATCH_CONFIG``/env, credentials from
    ``PG*`` variables when given (Compose), else from the local stack's state; both read
    by :func:`eomatch.settings.service_environment`, the one place they are read."""
    from eomatch.logs import configure_logging

    settings = load_settings()
    env = service_environment()
    service = f"api-{audience}"
    configure_logging(
        service,
        settings.stack.log_format,
        log_file=env.log_file,
        max_bytes=settings.stack.log_max_bytes,
        backups=settings.stack.log_backups,
    )
    _route_server_logs_to_root()
    from eomatch.server.errors import escape_log_records

    escape_log_records()
    creds = None
    if env.pg.get("PGUSER") and env.pg.get("PGPASSWORD"):
        host, port = _uri_hosts(env.pg.get("PGHOST", "127.0.0.1"), env.pg.get("PGPORT", "5432"))
        creds = DbCredentials(
            host=host,
            port=port,
            dbname=env.pg.get("PGDATABASE", "postgres"),
            user=env.pg["PGUSER"],
            password=env.pg["PGPASSWORD"],
        )
    return create_app(settings, audience, creds)


def _uri_hosts(pghost: str, pgport: str) -> tuple[str, int]:
    """libpq's host and port lists (``a,b`` / ``p1,p2``: the external API's standbys, then
    the primary) as a URI's ``a:p1,b`` and the last port, which asyncpg and libpq read as
    the same hosts in the same order."""
    hosts = pghost.split(",")
    ports = pgport.split(",")
    ports = ports * len(hosts) if len(ports) == 1 else ports
    if len(ports) != len(hosts):
        raise ValueError(f"PGHOST names {len(hosts)} hosts but PGPORT {len(ports)} ports")
    return ",".join([*(f"{h}:{p}" for h, p in zip(hosts[:-1], ports[:-1], strict=True)), hosts[-1]]), int(ports[-1])


def _route_server_logs_to_root() -> None:
    """uvicorn's own loggers (and Python warnings) go to the app's rotated log file,
    in its format, rather than to the unrotated stdout capture."""
    import logging

    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncpg"):
        lg = logging.getLogger(name)
        for handler in list(lg.handlers):
            lg.removeHandler(handler)
        lg.propagate = True
    logging.captureWarnings(True)


def internal_app() -> FastAPI:
    """``uvicorn --factory eomatch.server.app:internal_app``"""
    return _from_env("internal")


def external_app() -> FastAPI:
    """``uvicorn --factory eomatch.server.app:external_app``"""
    return _from_env("external")
