"""MkDocs hooks (mkdocs.yml): the README, which lives beside docs/ for GitHub, is the site's home page.

Its links point into docs/ and the guides link back to ../README.md; on the site both sit in one folder, so the
links are rewritten as the pages are read (the files on disk stay as GitHub shows them).
"""

from pathlib import Path

from mkdocs.structure.files import File


def on_files(files, config):
    readme = Path(config["docs_dir"]).parent / "README.md"
    files.append(File.generated(config, "index.md", content=readme.read_text()))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "index.md":
        return markdown.replace("](docs/", "](")
    return markdown.replace("](../README.md", "](index.md")
