"""The STAC Browser build inputs (no stack): every input is in the cache key and in
``deploy/browser/``, and ``offline-patch.js`` turns validation and remote queryable schemas off or fails loudly."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from eomatch.settings import load_settings
from eomatch.stack import browser
from eomatch.stack.render import BROWSER_BUILD_INPUTS, render_deploy_files

NODE = shutil.which("node") or shutil.which("nodejs")

# The lines of the unpacked @radiantearth/stac-browser 4.0.1 the patch rewrites.
STOCK = {
    "src/components/Source.vue": '        <b-row class="stac-valid">\n          <Validation :data="stac" />\n',
    "src/router/index.js": '    path: "/validation/(.*)",\n    name: "validation",\n'
                           '    component: () => import("../views/Validation.vue"),\n',
    "src/components/SearchFilter.vue": "        schemas = await refParser.dereference(response.data);\n",
    "public/index.html": '<head><!-- <script defer="defer" src="/config.js"></script> --></head>\n',
}


def test_build_key_covers_every_build_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "browser_pkg"
    shutil.copytree(browser.PKG_DIR, pkg)
    monkeypatch.setattr(browser, "PKG_DIR", pkg)
    keys = {browser.build_key("4.0.1")}
    for name in BROWSER_BUILD_INPUTS:
        with (pkg / name).open("a") as f:
            f.write("\n")
        keys.add(browser.build_key("4.0.1"))
    assert len(keys) == len(BROWSER_BUILD_INPUTS) + 1, "a build input change kept the old cached build"


def test_deploy_folder_gets_every_build_input() -> None:
    rendered = render_deploy_files(load_settings(environ={}))
    for name in BROWSER_BUILD_INPUTS:
        assert rendered[f"browser/{name}"] == (browser.PKG_DIR / name).read_text(), name
    dockerfile = (Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile.browser").read_text()
    for name in BROWSER_BUILD_INPUTS:
        assert f"browser/{name}" in dockerfile, f"Dockerfile.browser does not copy {name}"
    assert "node offline-patch.js" in dockerfile


@pytest.mark.skipif(NODE is None, reason="needs node")
def test_offline_patch_turns_validation_off(tmp_path: Path) -> None:
    for rel, text in STOCK.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    shutil.copy(browser.PKG_DIR / "offline-patch.js", tmp_path)
    subprocess.run([str(NODE), "offline-patch.js"], cwd=tmp_path, check=True, capture_output=True)
    assert '<b-row v-if="false" class="stac-valid">' in (tmp_path / "src/components/Source.vue").read_text()
    router = (tmp_path / "src/router/index.js").read_text()
    assert "Validation.vue" not in router and "redirect:" in router
    assert "dereference(response.data, {resolve: {external: false}})" in (tmp_path / "src/components/SearchFilter.vue").read_text()
    assert '<script defer="defer" src="/config.js"></script>' in (tmp_path / "public/index.html").read_text()
    assert "<!--" not in (tmp_path / "public/index.html").read_text()


@pytest.mark.skipif(NODE is None, reason="needs node")
def test_offline_patch_fails_when_the_source_changed(tmp_path: Path) -> None:
    for rel, text in STOCK.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "src/components/Source.vue").write_text("<b-row class='something-else'>\n")
    shutil.copy(browser.PKG_DIR / "offline-patch.js", tmp_path)
    proc = subprocess.run([str(NODE), "offline-patch.js"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "not found in src/components/Source.vue" in proc.stderr
