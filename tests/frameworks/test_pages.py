"""Each framework how-to shows, by inclusion, exactly the file its test runs."""

from __future__ import annotations

import pytest
from framework_helpers import CODE

PAGES = {"fastapi.md": "fastapi_app.py", "flask.md": "flask_app.py", "trio-app.md": "trio_app.py"}


@pytest.mark.parametrize(("page", "code"), PAGES.items())
def test_the_page_includes_the_tested_file(page: str, code: str) -> None:
    text = (CODE.parent / page).read_text(encoding="utf-8")
    assert f'--8<-- "docs/how-to/code/{code}"' in text
    assert (CODE / code).is_file()
