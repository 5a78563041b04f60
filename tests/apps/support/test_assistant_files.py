"""Assistant files: the issue's format loads; a malformed file is one line naming its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from luodi.apps.support import AssistantCatalog, AssistantFileError, parse_assistant

# The issue's example, verbatim (its last line is longer than our code's).
ISSUE_EXAMPLE = """\
name: shop
knowledge_bases: [faq]
intents:
  - name: refund
    description: 申请退款或询问退款进度
    examples: ["我要退款", "退款多久到账", "how do I get a refund"]
    action: {type: answer}            # answer | slots | handoff | reply
  - name: order_status
    examples: ["我的快递到哪了", "where is my order"]
    action: {type: slots, slots: {order_id: {pattern: "\\\\d{10,20}", ask: "请提供订单号"}}, webhook: "http://127.0.0.1:9000/orders"}
"""  # noqa: E501


def test_the_issue_example_loads() -> None:
    assistant = parse_assistant(ISSUE_EXAMPLE)
    order = assistant.intent("order_status")
    assert assistant.model_name == "support/shop"
    assert order is not None and order.action.slots["order_id"].pattern == r"\d{10,20}"


@pytest.mark.parametrize(
    ("broken", "line", "words"),
    [
        (ISSUE_EXAMPLE.replace("{type: answer}", "{type: answr}"), 7, "intents.0.action.type"),
        (ISSUE_EXAMPLE.replace('examples: ["我的', 'exampels: ["我的'), 9, "exampels"),
        (ISSUE_EXAMPLE.replace('    examples: ["我要', '   examples: ["我要'), 6, ""),
        (ISSUE_EXAMPLE.replace("\\\\d{10,20}", "(unclosed"), 10, "regular expression"),
        (ISSUE_EXAMPLE + "  - name: refund\n    examples: [again]\n", 3, "defined twice"),
    ],
)
def test_a_malformed_file_is_one_line_naming_its_line(broken: str, line: int, words: str) -> None:
    with pytest.raises(AssistantFileError) as caught:
        parse_assistant(broken, "shop.yaml")
    message = caught.value.message
    assert "\n" not in message
    assert message.startswith(f"shop.yaml:{line}: "), message
    assert words in message


def test_a_bad_reload_keeps_the_assistants_in_force(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(ISSUE_EXAMPLE, encoding="utf-8")
    catalog = AssistantCatalog(tmp_path, check_every_s=0)
    path.write_text(ISSUE_EXAMPLE.replace("{type: answer}", "{type: 42}"), encoding="utf-8")
    with pytest.raises(AssistantFileError, match=r"shop\.yaml:7: "):
        catalog.reload()
    assert catalog.get("shop") is not None
    (tmp_path / "other.yaml").write_text(ISSUE_EXAMPLE.replace("name: shop", "name: desk"))
    path.write_text(ISSUE_EXAMPLE, encoding="utf-8")
    catalog.refresh()
    assert sorted(catalog.assistants) == ["desk", "shop"]
