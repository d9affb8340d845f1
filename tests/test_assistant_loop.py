"""The tool loop: tool calls go to the tools and their results back to the model, cards come
from tool results only, and a model that keeps calling tools stops at the round limit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, cast

from app.ai import ChatTurn, Finished, ReplyRequest, ToolCall, ToolResult
from app.assistant import tools
from app.assistant.loop import ROUND_LIMIT_REPLY, Products, ToolUse, respond
from app.assistant.tools import Outcome, Toolbox

CARD = {"id": 1, "handle": "merino", "title": "Merino", "url": "https://s.example/products/m"}


class ScriptedModel:
    """Answers each round from a script: a list of tool calls, or text."""

    name = "scripted"

    def __init__(self, script: list[list[ToolCall] | str]) -> None:
        self.script = script
        self.seen: list[ReplyRequest] = []

    async def stream(self, request: ReplyRequest) -> AsyncIterator[str | Finished | ToolCall]:
        self.seen.append(request)
        step = self.script[min(len(self.seen) - 1, len(self.script) - 1)]
        if isinstance(step, str):
            for word in step.split(" "):
                yield word + " "
            yield Finished("stop")
            return
        yield "Let me look. "
        for call in step:
            yield call
        yield Finished("tool_calls")

    async def aclose(self) -> None:
        return None


class FakeToolbox:
    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    async def run(self, call: ToolCall) -> Outcome:
        self.calls.append(call)
        if call.name != "search_products":
            content = json.dumps({"error": "no such tool"})
            return Outcome(ToolResult(call.id, call.name, content, is_error=True))
        result = ToolResult(call.id, call.name, json.dumps({"products": [{"title": "Merino"}]}))
        return Outcome(result, cards=[CARD], matched=True)


def _request() -> ReplyRequest:
    return ReplyRequest(
        system_prompt="Be helpful.",
        messages=[ChatTurn("user", "Any merino?")],
        tools=list(tools.ALL),
    )


async def _run(model: ScriptedModel, toolbox: FakeToolbox, rounds: int = 3) -> list[Any]:
    box = cast(Toolbox, toolbox)
    return [item async for item in respond(model, _request(), box, max_rounds=rounds)]


async def test_a_tool_call_is_run_and_its_result_read_by_the_model() -> None:
    model = ScriptedModel(
        [[ToolCall("c1", "search_products", '{"query": "merino"}')], "Here it is."]
    )
    toolbox = FakeToolbox()
    items = await _run(model, toolbox)
    text = "".join(i for i in items if isinstance(i, str))
    assert text == "Let me look. Here it is. "
    assert [i for i in items if isinstance(i, Products)] == [Products([CARD])]
    assert [i for i in items if isinstance(i, ToolUse)] == [
        ToolUse("search_products", '{"query": "merino"}', True, True)
    ]
    assert items[-1] == Finished("stop")
    # The second round saw the call and its result, in order, after the shopper's message.
    second = model.seen[1].messages
    assert [m.role for m in second] == ["user", "assistant", "tool"]
    assert second[1].tool_calls[0].name == "search_products"
    assert second[2].tool_result is not None and "Merino" in second[2].tool_result.content


async def test_an_unknown_tool_is_an_error_the_model_reads() -> None:
    model = ScriptedModel([[ToolCall("c1", "delete_shop", "{}")], "Sorry."])
    items = await _run(model, FakeToolbox())
    assert not any(isinstance(i, Products) for i in items)
    assert [i.ok for i in items if isinstance(i, ToolUse)] == [False]
    fed_back = model.seen[1].messages[-1].tool_result
    assert fed_back is not None and fed_back.is_error


async def test_a_model_that_keeps_calling_tools_stops_at_the_round_limit() -> None:
    looping = ScriptedModel([[ToolCall("c", "search_products", '{"query": "x"}')]])
    toolbox = FakeToolbox()
    items = await _run(looping, toolbox, rounds=2)
    assert len(toolbox.calls) == 2, "two rounds of tools, then none offered"
    assert len(looping.seen) == 3 and looping.seen[-1].tools == ()
    assert items[-1] == Finished("tool_limit")
    assert ROUND_LIMIT_REPLY in "".join(i for i in items if isinstance(i, str))


async def test_two_calls_in_one_round_both_run() -> None:
    model = ScriptedModel(
        [
            [
                ToolCall("a", "search_products", '{"query": "merino"}'),
                ToolCall("b", "search_policies", '{"query": "returns"}'),
            ],
            "Done.",
        ]
    )
    toolbox = FakeToolbox()
    await _run(model, toolbox)
    assert [c.id for c in toolbox.calls] == ["a", "b"]
    assert [m.role for m in model.seen[1].messages] == ["user", "assistant", "tool", "tool"]
