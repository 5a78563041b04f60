"""``luodi kb``: create, ingest with a bad file, search, erase."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from luodi.cli.kb import app

FIXTURES = Path(__file__).parent.parent / "fixtures" / "knowledge"


def test_create_ingest_search_and_erase(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    assert runner.invoke(app, ["create", "faq", *data]).exit_code == 0
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"not a pdf")
    result = runner.invoke(
        app, ["ingest", "faq", str(FIXTURES / "faq_cn.md"), str(bad), "--meta", '{"s": "1"}', *data]
    )
    assert result.exit_code == 1  # some files failed
    assert "added 1" in result.output and "broken.pdf" in result.output
    result = runner.invoke(app, ["search", "faq", "挂失", "--top-k", "1", *data])
    assert result.exit_code == 0 and "95888" in result.output
    result = runner.invoke(app, ["delete", "faq", "--where", "s=1", *data])
    assert "erased 1 documents" in result.output
    result = runner.invoke(app, ["search", "faq", "挂失", *data])
    assert "95888" not in result.output


def test_unknown_collection_fails_with_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["search", "nope", "x", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "not found" in result.output


def test_collections_get_a_tenant_and_can_be_shared(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    assert runner.invoke(app, ["create", "hr", "--tenant", "acme", *data]).exit_code == 0
    assert runner.invoke(app, ["create", "legacy", *data]).exit_code == 0  # as before tenancy
    assigned = runner.invoke(app, ["assign", "legacy", "--tenant", "globex", "--shared", *data])
    assert assigned.exit_code == 0, assigned.output
    assert "tenant globex, shared" in assigned.output
    listed = runner.invoke(app, ["list", *data], terminal_width=200).output
    rows = {line.split()[1]: line for line in listed.splitlines() if "│" in line[:3]}
    assert "acme" in rows["hr"] and "no" in rows["hr"]
    assert "globex" in rows["legacy"] and "yes" in rows["legacy"]
    nothing = runner.invoke(app, ["assign", "hr", *data])
    assert nothing.exit_code == 2 and "--tenant" in nothing.output


def test_reembed_shows_progress_and_the_job_is_listed_and_watched(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    assert runner.invoke(app, ["create", "faq", *data]).exit_code == 0
    ingested = runner.invoke(app, ["ingest", "faq", str(FIXTURES), *data])
    assert ingested.exit_code == 0 and "added 5" in ingested.output
    done = runner.invoke(app, ["reembed", "faq", *data])
    assert done.exit_code == 0, done.output
    assert "reembed done" in done.output
    job_id = done.output.split()[0]
    listed = runner.invoke(app, ["jobs", "faq", *data])
    assert listed.output.startswith(f"{job_id} reembed done")
    watched = runner.invoke(app, ["watch", "faq", job_id, *data])
    assert watched.exit_code == 0 and "reembed done" in watched.output
    missing = runner.invoke(app, ["watch", "faq", "nope", *data])
    assert missing.exit_code == 1 and "not found" in missing.output
    found = runner.invoke(app, ["search", "faq", "挂失", "--top-k", "1", *data])
    assert "95888" in found.output
