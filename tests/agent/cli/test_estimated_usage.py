"""A server that sends no usage (llama-cpp-python ignores `stream_options`): the headless report says its usage is
estimated, a server that sends it gets no such mark, and `--max-tokens` holds on the estimate. Real CLI subprocess,
real loopback server."""

from __future__ import annotations

from dsv4.agent.report import HeadlessReport

from ...conftest import FIX_SCRIPT, run_cli


def headless(calc_repo, server, *extra: str) -> tuple[int, HeadlessReport]:
    proc = run_cli(["run", "--headless", "fix the failing test", "--base-url", server.base_url, "--model", "replay",
                    "--output-format", "json", *extra], calc_repo)
    return proc.returncode, HeadlessReport.model_validate_json(proc.stdout)


def test_the_report_says_usage_is_estimated_when_the_server_sends_none(calc_repo, replay):
    server = replay(FIX_SCRIPT, send_usage=False)
    code, report = headless(calc_repo, server)
    assert code == 0 and report.status == "done" and report.tests.ok
    assert report.usage.estimated and report.usage.prompt_tokens > 0 and report.usage.completion_tokens > 0


def test_reported_usage_is_not_marked_estimated(calc_repo, replay):
    code, report = headless(calc_repo, replay(FIX_SCRIPT))
    assert code == 0 and not report.usage.estimated and report.usage.prompt_tokens > 0


def test_max_tokens_still_stops_a_run_on_a_server_without_usage(calc_repo, replay):
    loop = [{"content": "", "tool_calls": [{"name": "read_file", "arguments": {"path": "tests/test_calc.py"}}]},
            {"content": "", "tool_calls": [{"name": "list_files", "arguments": {}}]}] * 10
    server = replay(loop, send_usage=False)
    code, report = headless(calc_repo, server, "--max-tokens", "3000")
    assert code == 1 and report.status == "budget_exhausted" and report.budget_exhausted == "max_tokens"
    assert report.usage.estimated and report.usage.total_tokens >= 3000
    assert len(server.requests) < len(loop)  # it stopped on the budget, not because the script ran out
