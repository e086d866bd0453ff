"""Servers and data for the researcher-workflow tests: a threaded HTTP file server
with Range support (it can be stopped mid-transfer and restarted on the same
port), a local S3 server (moto), small real GeoTIFFs, and a matchup catalogue
whose products point at them.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- HTTP


class _Handler(http.server.BaseHTTPRequestHandler):
    server: RangeServer._Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _resolve(self) -> Path | None:
        rel = self.path.split("?", 1)[0].lstrip("/")
        path = self.server.owner.root / rel
        if rel == "" or rel.endswith("/"):
            path = path / "index.json"
        return path if path.is_file() else None

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        owner = self.server.owner
        owner.requests.append((self.path, self.headers.get("Range")))
        owner.authorizations.append(self.headers.get("Authorization"))
        if owner.bearer and self.headers.get("Authorization") != f"Bearer {owner.bearer}":
            self._plain(401, b"unauthorized")
            return
        if owner.basic is not None:
            token = base64.b64encode(f"{owner.basic[0]}:{owner.basic[1]}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {token}":
                self._plain(401, b"unauthorized")
                return
        key = self.path.split("?", 1)[0]
        if owner.fail_first.get(key, 0) > 0:
            owner.fail_first[key] -= 1
            self._plain(503, b"busy")
            return
        path = self._resolve()
        if path is None:
            self._plain(404, b'{"code":"NotFound","description":"no such file"}', "application/json")
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and owner.ranges:
            first, _, last = rng[len("bytes="):].partition("-")
            start = int(first or 0)
            end = int(last) if last else size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        ctype = "application/json" if path.suffix == ".json" else "text/html" if path.suffix == ".html" else "image/tiff"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return
        with owner.flight:
            owner.in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
            owner.flight.notify_all()
            if owner.hold_until > 1:
                owner.flight.wait_for(lambda: owner.max_in_flight >= owner.hold_until, timeout=owner.hold_timeout_s)
        try:
            self._send_body(path, start, end)
        finally:
            with owner.flight:
                owner.in_flight -= 1

    def _send_body(self, path: Path, start: int, end: int) -> None:
        owner = self.server.owner
        with open(path, "rb") as fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0:
                if owner.stopping.is_set():
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                block = fh.read(min(owner.chunk_bytes, left))
                try:
                    self.wfile.write(block)
                except OSError:
                    return
                with owner.lock:
                    owner.bytes_sent += len(block)
                left -= len(block)
                if owner.delay_s:
                    time.sleep(owner.delay_s)

    def _plain(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class RangeServer:
    """Serves the files under ``root`` on 127.0.0.1, with Range requests.

    ``delay_s`` sleeps after each ``chunk_bytes`` block (so a test can stop the
    server mid-transfer); ``stop()`` cuts the open connections; ``start()`` again
    binds the same port. ``bearer`` demands that token; ``fail_first[path] = n``
    answers 503 n times; ``ranges=False`` ignores Range headers.
    ``basic = (user, password)`` demands HTTP basic auth; ``authorizations``
    records each request's Authorization header. ``max_in_flight`` is the most
    file bodies ever sent at once; ``hold_until = n`` makes each body wait (at
    most ``hold_timeout_s``) until n have been in flight together once, so
    overlap is certain whenever the client really runs n requests at once.
    """

    class _Server(http.server.ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True
        owner: RangeServer

        def handle_error(self, request: Any, client_address: Any) -> None:
            """A client closing a kept-alive connection (e.g. after a 4xx) is no error:
            without this, socketserver prints a traceback on stderr, which the CLI
            tests would mistake for one of the command's own."""
            if isinstance(sys.exc_info()[1], ConnectionError):
                return
            super().handle_error(request, client_address)

    def __init__(self, root: Path, port: int = 0, chunk_bytes: int = 64 * 1024, delay_s: float = 0.0) -> None:
        self.root = Path(root)
        self.port = port
        self.chunk_bytes = chunk_bytes
        self.delay_s = delay_s
        self.bearer: str | None = None
        self.ranges = True
        self.fail_first: dict[str, int] = {}
        self.basic: tuple[str, str] | None = None
        self.authorizations: list[str | None] = []
        self.flight = threading.Condition()
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold_until = 0
        self.hold_timeout_s = 10.0
        self.bytes_sent = 0
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._server: RangeServer._Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def start(self) -> RangeServer:
        self.stopping.clear()
        self._server = self._Server(("127.0.0.1", self.port), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> RangeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- S3


@dataclass
class S3Server:
    """moto in server mode on a free port, with one bucket."""

    port: int = 0
    bucket: str = "eomatch-test"
    _server: Any = None
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(method, path, Authorization header) of every request moto received."""

    def start(self) -> S3Server:
        from moto.server import ThreadedMotoServer

        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self._record_requests()
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def _record_requests(self) -> None:
        """Wrap moto's WSGI app so ``requests`` shows what each client sent."""
        wsgi = self._server._server  # werkzeug's server; it looks ``app`` up per request
        app = wsgi.app

        def recording(environ: dict[str, Any], start_response: Any) -> Any:
            self.requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), environ.get("HTTP_AUTHORIZATION")))
            return app(environ, start_response)

        wsgi.app = recording

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip

    def put(self, key: str, path: Path, acl: str | None = None) -> str:
        """Upload ``path`` as ``key`` (``acl="public-read"`` lets anonymous clients read it)."""
        extra = {"ACL": acl} if acl else {}
        self.client().put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes(), **extra)
        return f"s3://{self.bucket}/{key}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def download_settings(self) -> dict[str, Any]:
        return {
            "s3_endpoint_url": self.endpoint,
            "s3_anonymous": False,
            "s3_access_key_id": "testing",
            "s3_secret_access_key": "testing",
        }


# --------------------------------------------------------------------------- rasters


def write_geotiff(path: Path, crs: str, west: float, north: float, pixel: float, size: int = 200, seed: int = 0) -> np.ndarray:
    """A one-band float32 GeoTIFF of ``size``×``size`` pixels; returns its values."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    data = rng.random((size, size), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="GTiff", height=size, width=size, count=1, dtype="float32",
        crs=crs, transform=from_origin(west, north, pixel, pixel), tiled=True, blockxsize=64, blockysize=64,
    ) as dst:  # fmt: skip
        dst.write(data, 1)
    return data


def footprint_lonlat(path: Path) -> Any:
    """The raster's footprint as a lon/lat shapely polygon (densified edges)."""
    import rasterio
    from rasterio.warp import transform_geom
    from shapely.geometry import box, mapping, shape

    with rasterio.open(path) as src:
        poly = box(*src.bounds).segmentize((src.bounds.right - src.bounds.left) / 20)
        return shape(transform_geom(src.crs, "EPSG:4326", mapping(poly)))


def sha256_multihash(path: Path) -> str:
    return "1220" + hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- catalogue


@dataclass
class Scene:
    """What a test catalogue holds: ids, files and where they are served."""

    root: Path
    tag: str
    s2_collection: str
    ls_collection: str
    matchup_collection: str = ""
    event_ids: list[str] = field(default_factory=list)
    matchup_ids: list[str] = field(default_factory=list)
    product_files: dict[str, Path] = field(default_factory=dict)
    product_values: dict[str, np.ndarray] = field(default_factory=dict)
    days: list[str] = field(default_factory=list)


def build_scene(
    root: Path,
    data_dir: Path,
    http: RangeServer | None = None,
    s3: S3Server | None = None,
    days: tuple[str, ...] = ("2022-05-21",),
    local_data: bool = True,
    landsat_remote: str = "s3",
) -> Scene:
    """A catalogue of one event per day, each with one Sentinel-2A/Landsat-9 matchup.

    The Sentinel-2A product is a UTM 30N GeoTIFF (100 m), the Landsat-9 one an
    EPSG:4326 GeoTIFF; footprints are the rasters' real footprints and overlap.
    Products get ``data`` (file://) assets when ``local_data``, plus a remote
    ``red`` asset: http for Sentinel-2A, ``landsat_remote`` (s3 or http) for Landsat-9.
    (The external API only shows http(s) hrefs, so external workflows use http.)
    Collection ids are unique per call, so tests sharing one stack never collide.
    """
    from eomatch.catalogue import MatchupCatalogue
    from eomatch.model import Matchup, MatchupEvent, Product

    tag = uuid.uuid4().hex[:8]
    scene = Scene(root=root, tag=tag, s2_collection=f"S2T{tag}", ls_collection=f"LST{tag}", days=list(days))
    with MatchupCatalogue.create(root) as cat:
        for n, day in enumerate(days):
            s2_id, ls_id = f"S2A_{tag}_{n}", f"LC09_{tag}_{n}"
            s2_file, ls_file = data_dir / f"{s2_id}.tif", data_dir / f"{ls_id}.tif"
            scene.product_values[s2_id] = write_geotiff(s2_file, "EPSG:32630", 430000.0, 5610000.0, 100.0, seed=2 * n)
            scene.product_values[ls_id] = write_geotiff(ls_file, "EPSG:4326", -3.85, 50.70, 0.001, seed=2 * n + 1)
            scene.product_files[s2_id], scene.product_files[ls_id] = s2_file, ls_file
            products = []
            for pid, coll, platform, path, t in (
                (s2_id, scene.s2_collection, "Sentinel-2A", s2_file, f"{day}T11:00:00Z"),
                (ls_id, scene.ls_collection, "Landsat-9", ls_file, f"{day}T11:10:00Z"),
            ):
                assets: dict[str, Any] = {}
                if local_data:
                    assets["data"] = {"href": path.resolve().as_uri(), "type": "image/tiff; application=geotiff", "roles": ["data"]}
                remote = {"type": "image/tiff; application=geotiff", "roles": ["data"], "file:size": path.stat().st_size, "file:checksum": sha256_multihash(path)}
                scheme = "http" if platform == "Sentinel-2A" else landsat_remote
                if scheme == "http" and http is not None:
                    assets["red"] = {"href": http.url(path.name), **remote}
                if scheme == "s3" and s3 is not None:
                    assets["red"] = {"href": s3.put(path.name, path), **remote}
                assets["thumbnail"] = {"href": f"https://example.invalid/{pid}.png", "roles": ["thumbnail"]}
                products.append(
                    Product.create(
                        id=pid, collection=coll, platform=platform, geometry=footprint_lonlat(path),
                        start=t, assets=assets,
                    )  # fmt: skip
                )
            event = MatchupEvent.create(
                platform_a="Sentinel-2A", collection_a=scene.s2_collection,
                platform_b="Landsat-9", collection_b=scene.ls_collection,
                start=f"{day}T10:55:00Z", end=f"{day}T11:15:00Z",
                region=footprint_lonlat(s2_file).union(footprint_lonlat(ls_file)).envelope,
            )  # fmt: skip
            matchup = Matchup.create(event, products[0].to_dict(), products[1].to_dict())
            cat.add_event(event)
            scene.event_ids.append(event.id)
            scene.matchup_ids.append(matchup.id)
            scene.matchup_collection = matchup.collection_id
    return scene
