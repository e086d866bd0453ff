"""The browser service: STAC Browser built once from npm, served by its own nginx.

``@radiantearth/stac-browser`` on npm is source only; it is built here with the
committed ``package.json`` (``ol-stac`` pinned to 1.1.0, without which the
build fails; ``world-atlas`` for the basemap) and ``package-lock.json``, into a
cache folder keyed by version and by the hash of every file of ``browser_pkg/``
(the build inputs, ``BUILD_INPUTS``). The build is made to work air-gapped:
``basemaps.config.js`` (Natural Earth land drawn from the bundle, no tile server)
and ``fields.config.js`` (labels and units of the ``matchup:`` fields) replace
the stock ones, and ``offline-patch.js`` turns schema validation off (it would
fetch schemas from schemas.stacspec.org) and loads ``/config.js``. The runtime
``config.js`` is written into the served copy, so one build serves any settings.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from filelock import FileLock

from eomatch.errors import StackError
from eomatch.settings import Settings, default_cache_dir
from eomatch.stack.nginx import NginxInstance
from eomatch.stack.render import BROWSER_BUILD_INPUTS, render_browser_conf, render_browser_config_js
from eomatch.stack.state import StatePaths

log = logging.getLogger(__name__)

PKG_DIR = Path(__file__).parent / "browser_pkg"


BUILD_INPUTS = BROWSER_BUILD_INPUTS
"""Files of ``browser_pkg/`` copied into the unpacked package; ``deploy/browser/`` gets them too."""


def build_key(version: str) -> str:
    """Cache key of a build: a change of any build input makes a new build."""
    h = hashlib.sha256()
    for name in BUILD_INPUTS:
        h.update(name.encode() + b"\0")
        h.update((PKG_DIR / name).read_bytes())
    return f"stac-browser-{version}-{h.hexdigest()[:12]}"


def _npm(args: list[str], cwd: Path, quiet: bool) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise StackError("browser: npm not found; install Node.js and npm (apt-get install nodejs npm) or run 'make demo'")
    proc = subprocess.run([npm, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        raise StackError(f"browser: 'npm {' '.join(args)}' failed: {lines[-1] if lines else proc.returncode}")


def _node(args: list[str], cwd: Path) -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        raise StackError("browser: node not found; install Node.js and npm (apt-get install nodejs npm)")
    proc = subprocess.run([node, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        raise StackError(f"browser: 'node {' '.join(args)}' failed: {lines[-1] if lines else proc.returncode}")


def build_browser(settings: Settings, quiet: bool = False) -> Path:
    """Return the folder of a finished build, building it the first time (~2 min)."""
    cfg = settings.stack.browser
    cache = (cfg.cache_dir or default_cache_dir()).expanduser().resolve()
    target = cache / build_key(cfg.version)
    dist = target / "dist"
    if (dist / "index.html").exists():
        return dist
    cache.mkdir(parents=True, exist_ok=True)
    # Two stacks starting at once (tests, a demo beside CI) build once: the second waits.
    with FileLock(str(cache / f"{target.name}.lock")):
        if (dist / "index.html").exists():
            return dist
        _build_into(cfg.version, cache, target, dist, quiet)
    return dist


def _build_into(version: str, cache: Path, target: Path, dist: Path, quiet: bool) -> None:
    if not quiet:
        print(f"building STAC Browser {version} once into {target} (about 2 minutes)...", flush=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
    try:
        _npm(["pack", f"@radiantearth/stac-browser@{version}", "--silent"], cwd=work, quiet=quiet)
        tgz = next(work.glob("*.tgz"), None)
        if tgz is None:
            raise StackError("browser: npm pack produced no archive")
        with tarfile.open(tgz) as tar:
            tar.extractall(work, filter="data")
        src = work / "package"
        for name in BUILD_INPUTS:
            shutil.copy(PKG_DIR / name, src / name)
        _node(["offline-patch.js"], cwd=src)
        _npm(["ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=src, quiet=quiet)
        _npm(["run", "build"], cwd=src, quiet=quiet)
        if not (src / "dist" / "index.html").exists():
            raise StackError("browser: build finished without dist/index.html")
        target.mkdir(parents=True, exist_ok=True)
        staging = target / ".dist-new"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.move(str(src / "dist"), staging)
        os.replace(staging, dist)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class Browser(NginxInstance):
    """Static STAC Browser on its own nginx (``browser`` service of the Compose file)."""

    name = "browser"
    port_setting = "stack.proxy.browser_port"

    def __init__(self, settings: Settings, quiet: bool = False) -> None:
        super().__init__(settings, "browser")
        self.quiet = quiet

    @property
    def port(self) -> int:
        return self.settings.stack.proxy.browser_port

    @property
    def site_dir(self) -> Path:
        return StatePaths(self.settings.stack.state_dir).root / "browser-site"

    def prepare(self) -> str:
        """Copy the cached build into the state folder (readable by nginx workers)
        with this stack's ``config.js``; return the nginx config."""
        dist = build_browser(self.settings, quiet=self.quiet)
        site = self.site_dir
        marker = site / ".build"
        if not marker.exists() or marker.read_text() != str(dist):
            tmp = site.with_name(".browser-site-new")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(dist, tmp)
            (tmp / ".build").write_text(str(dist))
            shutil.rmtree(site, ignore_errors=True)
            os.replace(tmp, site)
        (site / "config.js").write_text(render_browser_config_js(self.settings))
        for p in [site, *site.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        return render_browser_conf(self.settings, site, mode="local")
