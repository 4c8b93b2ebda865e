"""The docs: generated tables fresh, every local link resolving, the README a front door."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_blocks_are_fresh():
    gen = _generator()
    stale = []
    for path in gen.FILES:
        _, changed = gen.render(path.read_text(), path)
        stale += [f"{path.name}: {name}" for name in changed]
    assert not stale, f"run `python docs/generate.py`: stale blocks {stale}"


def test_a_stale_block_is_found_and_rewritten(tmp_path):
    gen = _generator()
    text = "before\n<!-- generated: scenes -->\n| made up |\n<!-- /generated -->\nafter\n"
    new, changed = gen.render(text, tmp_path / "x.md")
    assert changed == ["scenes"] and "made up" not in new and "scenes-det" in new
    assert gen.render(new, tmp_path / "x.md")[1] == []
    with pytest.raises(SystemExit, match="unknown generated block 'nope'"):
        gen.render("<!-- generated: nope -->\n<!-- /generated -->", tmp_path / "x.md")


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 210
    assert "make train" in text and "make test" in text and "<!-- generated: headline -->" in text


@pytest.mark.parametrize("page", ["README.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))])
def test_every_local_link_resolves(page):
    path = ROOT / page if page == "README.md" else ROOT / "docs" / page
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # code is not links
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target:
            continue
        assert (path.parent / target).exists(), f"{page}: broken link {target}"
