"""Each code example of the README and the docs/ pages marked ``<!-- example: PATH -->``
(a path: other example kinds, such as ``demo``, are run by ``test_readme``) is that file,
as it is: the
files are what the tests run (examples/js/*.mjs and examples/python_client.py against the
demo, Quota.tsx in Chromium, ApiCalls.tsx in jsdom)."""

from __future__ import annotations

import re

from support import README, doc_pages, readme_block

EXAMPLES = {
    "examples/js/quickstart.mjs",
    "examples/js/aliases.mjs",
    "examples/python_client.py",
    "clients/js/tests/browser/app/Quota.tsx",
    "clients/js/tests/react/ApiCalls.tsx",
    "examples/config/catalog.yaml",  # applied by tests/configfile/test_apply_cli.py
    # built and run by tests/recipes/test_creator_platform.py
    "examples/recipes/creator-platform/js/track.mjs",
    "examples/recipes/creator-platform/js/server.mjs",
    "examples/recipes/creator-platform/js/page/CreatorUsage.tsx",
}


def test_readme_examples_are_the_files_the_tests_run() -> None:
    marked = {
        path
        for page in doc_pages()
        for path in re.findall(r"^<!-- example: (\S+/\S+) -->$", page.read_text(), re.MULTILINE)
    }
    assert marked >= EXAMPLES, EXAMPLES - marked
    root = README.parent
    for path in sorted(marked):
        assert readme_block(f"example: {path}") == (root / path).read_text(), path
