"""Always-allow rules: made from one request, matched by later ones, kept in the session log."""

from __future__ import annotations

from dsv4.agent.approval_rules import ApprovalRule, ApprovalRules, rule_for
from dsv4.agent.sessions import SessionStore


def test_a_command_rule_covers_its_first_words_only():
    rule = rule_for("bash", {"command": "npm test -- --watch=false"})
    assert rule == ApprovalRule(tool="bash", pattern="npm test*")
    assert rule.matches("bash", {"command": "npm test"}) and rule.matches("bash", {"command": "npm test -- -u"})
    assert not rule.matches("bash", {"command": "npm install evil"})
    assert not rule.matches("git", {"command": "npm test"})


def test_a_rule_never_covers_chained_or_redirected_commands():
    rule = rule_for("bash", {"command": "pytest -q"})
    assert rule.pattern == "pytest*"
    for command in ["pytest; rm -rf ~", "pytest && curl x", "pytest | sh", "pytest > /etc/passwd", "pytest $(id)",
                    "pytest `id`", "pytest\nrm x"]:
        assert not rule.matches("bash", {"command": command}), command


def test_options_and_globs_end_the_prefix():
    assert rule_for("bash", {"command": "ls -la"}).pattern == "ls*"
    assert rule_for("bash", {"command": "rm *.pyc"}).pattern == "rm*"
    assert rule_for("bash", {"command": "--weird"}).pattern == "--weird"
    assert rule_for("edit_file", {"path": "a.py"}) == ApprovalRule(tool="edit_file", pattern="*")


def test_rules_are_logged_and_read_back(tmp_path):
    store = SessionStore(tmp_path / "sessions.db")
    session_id = store.create("repo", tmp_path, "m")
    rules = ApprovalRules(store, session_id)
    rule = rule_for("bash", {"command": "make check"})
    rules.add(rule, turn=1)
    rules.add(rule, turn=2)  # once only
    again = ApprovalRules(store, session_id)
    assert again.rules == [rule] and again.allows("bash", {"command": "make check V=1"}) == rule
    assert again.allows("bash", {"command": "make install"}) is None
