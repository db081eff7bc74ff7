"""The guides build as a site (mkdocs.yml, the optional [docs] extra): `mkdocs build --strict` passes, so every
page is in the navigation, and every link between pages and every anchor resolves there too."""

import subprocess
import sys

from mkdocs.config import load_config
from tiny_settings import REPOSITORY


def nav_pages(entries) -> set[str]:
    pages = set()
    for entry in entries:
        if isinstance(entry, str):
            pages.add(entry)
        else:
            for value in entry.values():
                pages |= {value} if isinstance(value, str) else nav_pages(value)
    return pages


def test_every_guide_is_in_the_site_navigation():
    config = load_config(str(REPOSITORY / "mkdocs.yml"))
    guides = {path.name for path in (REPOSITORY / "docs").glob("*.md")}
    assert nav_pages(config["nav"]) == guides | {"index.md"}


def test_the_docs_build_as_a_site_with_the_readme_as_its_home_page(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    home = (site / "index.html").read_text()
    assert "lightning-transfer-lab" in home and 'href="own_images/"' in home  # the README's links, rewritten
    assert 'href="../"' in (site / "errors" / "index.html").read_text()  # the guides' link back to the README
    assert not (site / "site_hooks.py").exists()
