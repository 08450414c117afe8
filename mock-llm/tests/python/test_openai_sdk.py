#!/usr/bin/env python3
"""The official `openai` SDK against barrage-mock-llm.

Usage: python3 test_openai_sdk.py http://127.0.0.1:PORT/v1

The server must run with its default answer text and `--tool-call-rate 1` (requests without
tools still get text). Needs `pip install openai`. Also collectable by pytest, with the base
URL in MOCK_LLM_BASE_URL.
"""
import json
import os
import sys

import openai

DEFAULT_RESPONSE = (
    "This is a deterministic response from the mock language model server. "
    "It exists so that benchmarks measure the agent runtime itself rather than the latency of a real model. "
    "Every request receives exactly the same words, streamed back one word per chunk."
)
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "say something nice"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city", "unit"],
            },
        },
    }
]


def client(base_url):
    return openai.OpenAI(base_url=base_url, api_key="mock", max_retries=0, timeout=30)


def check_non_streaming(c):
    r = c.chat.completions.create(model="mock-gpt-4o", messages=MESSAGES)
    assert r.id.startswith("chatcmpl-"), r.id
    assert r.object == "chat.completion"
    assert r.model == "mock-gpt-4o"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == DEFAULT_RESPONSE, r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == 6, r.usage
    assert r.usage.completion_tokens == 42, r.usage
    assert r.usage.total_tokens == 48, r.usage


def check_streaming(c):
    stream = c.chat.completions.create(
        model="mock-gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    pieces, finish, usage, roles, n = [], None, None, [], 0
    for chunk in stream:
        n += 1
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        if delta.role:
            roles.append(delta.role)
        if delta.content:
            pieces.append(delta.content)
        if chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert "".join(pieces) == DEFAULT_RESPONSE, "".join(pieces)
    assert len(pieces) == 42, len(pieces)
    assert roles == ["assistant"], roles
    assert finish == "stop", finish
    assert usage is not None and usage.completion_tokens == 42 and usage.prompt_tokens == 6, usage
    assert n == 42 + 2, n


def check_tool_call(c):
    r = c.chat.completions.create(model="mock-gpt-4o", messages=MESSAGES, tools=TOOLS)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather", call
    assert call.id.startswith("call_"), call.id
    assert json.loads(call.function.arguments) == {"city": "mock", "unit": "c"}, call.function.arguments

    # Streamed tool call, reassembled the way LangChain and the SDK helpers do it.
    stream = c.chat.completions.create(model="mock-gpt-4o", messages=MESSAGES, tools=TOOLS, stream=True)
    name, args, call_id, finish = None, "", None, None
    for chunk in stream:
        if not chunk.choices:
            continue
        for tc in chunk.choices[0].delta.tool_calls or []:
            assert tc.index == 0
            call_id = tc.id or call_id
            if tc.function and tc.function.name:
                name = tc.function.name
            if tc.function and tc.function.arguments:
                args += tc.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather" and call_id and call_id.startswith("call_"), (name, call_id)
    assert json.loads(args) == {"city": "mock", "unit": "c"}, args
    assert finish == "tool_calls", finish

    # Feeding the tool result back gets a text answer.
    follow = MESSAGES + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    r = c.chat.completions.create(model="mock-gpt-4o", messages=follow, tools=TOOLS)
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content == DEFAULT_RESPONSE


def check_models(c):
    ids = [m.id for m in c.models.list()]
    assert ids == ["mock-gpt-4o"], ids


def test_openai_sdk():
    """pytest entry point."""
    base_url = os.environ.get("MOCK_LLM_BASE_URL")
    if not base_url:
        import pytest

        pytest.skip("set MOCK_LLM_BASE_URL to a running barrage-mock-llm (with --tool-call-rate 1)")
    main(base_url)


def main(base_url):
    c = client(base_url)
    for check in (check_models, check_non_streaming, check_streaming, check_tool_call):
        check(c)
        print(f"ok: {check.__name__}")
    print(f"openai sdk: all checks passed (openai {openai.__version__})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: test_openai_sdk.py BASE_URL  (e.g. http://127.0.0.1:11434/v1)")
    main(sys.argv[1])
