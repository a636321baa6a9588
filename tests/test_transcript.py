"""Unit tests of the hh-rlhf transcript parser (seal.ingest.transcript)."""

from __future__ import annotations

import pytest

from seal.ingest.transcript import TranscriptError, has_markers, parse_turns, split_final_response


def hh(*turns: str) -> str:
    """An hh-rlhf transcript from alternating Human/Assistant texts, starting with Human."""
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


def test_parse_turns_hh_style():
    text = hh("Hi there", "Hello! How can I help?", "Tell me a joke.", "Why did the chicken cross the road?")
    assert parse_turns(text) == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the chicken cross the road?"},
    ]


def test_parse_turns_marker_at_start_without_blank_lines():
    assert parse_turns("Human: hi\n\nAssistant: yo") == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
    ]


def test_parse_turns_leading_text_is_the_human_turn():
    # HHH prompts start with the human's words and only mark later turns.
    text = "I need advice.\n\nAssistant: Sure, what about?\n\nHuman: My garden."
    assert [t["role"] for t in parse_turns(text)] == ["user", "assistant", "user"]
    assert parse_turns(text)[0]["content"] == "I need advice."


def test_parse_turns_keeps_inline_markers_and_newlines_inside_a_turn():
    # Only a marker after a blank line (or at the very start) opens a turn.
    text = hh("Say 'Human: hi' please\nand keep\nthese lines", "Human: hi")
    turns = parse_turns(text)
    assert len(turns) == 2
    assert turns[0]["content"] == "Say 'Human: hi' please\nand keep\nthese lines"
    assert turns[1] == {"role": "assistant", "content": "Human: hi"}


def test_parse_turns_no_markers_is_one_turn():
    assert parse_turns("just text") == [{"role": "user", "content": "just text"}]
    assert parse_turns("   ") == []


def test_has_markers():
    assert has_markers(hh("a", "b"))
    assert has_markers("Human: a")
    assert has_markers("question\n\nAssistant: answer")
    assert not has_markers("a plain answer")
    assert not has_markers("he said Human: hi in the middle")


def test_split_final_response_single_turn():
    split = split_final_response(hh("How do I boil an egg?", "Nine minutes."))
    assert split.context == [{"role": "user", "content": "How do I boil an egg?"}]
    assert split.response == "Nine minutes."
    assert split.prefix == "\n\nHuman: How do I boil an egg?"


def test_split_final_response_multi_turn_context():
    split = split_final_response(hh("q1", "a1", "q2", "a2", "q3", "final answer"))
    assert [t["role"] for t in split.context] == ["user", "assistant", "user", "assistant", "user"]
    assert split.context[-1]["content"] == "q3"
    assert split.response == "final answer"


def test_split_final_response_keeps_multiline_response():
    split = split_final_response(hh("list?", "1. one\n2. two\n\n3. three"))
    assert split.response == "1. one\n2. two\n\n3. three"


def test_split_final_response_empty_final_response_is_allowed():
    # hh-rlhf harmless-base test has 4 chosen responses that are empty: they are data, not parse errors.
    split = split_final_response(hh("q", ""))
    assert split.response == ""
    assert split.context == [{"role": "user", "content": "q"}]


def test_split_final_response_bare_assistant_text():
    split = split_final_response("Assistant: only a response")
    assert split.context == []
    assert split.response == "only a response"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty_text"),
        ("  \n\n ", "empty_text"),
        (hh("only a question"), "no_assistant_turn"),
        (hh("q1") + hh("q2"), "no_assistant_turn"),
        ("no markers at all", "no_assistant_turn"),
        (hh("q", "a", "a trailing human turn"), "final_turn_not_assistant"),
    ],
    ids=["empty", "whitespace", "only-human", "two-human", "no-markers", "human-last"],
)
def test_split_final_response_errors(text, reason):
    with pytest.raises(TranscriptError) as err:
        split_final_response(text)
    assert err.value.reason == reason


def test_prefix_tells_context_mismatch():
    a = split_final_response(hh("q", "a1", "q2", "final A"))
    b = split_final_response(hh("q", "a1 changed", "q2", "final B"))
    same = split_final_response(hh("q", "a1", "q2", "final C"))
    assert a.prefix != b.prefix
    assert a.prefix == same.prefix
